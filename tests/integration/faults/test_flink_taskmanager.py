"""A killed Flink worker: Flink restarts the job from its last checkpoint, nothing is lost.

35 s into a live log a worker process is SIGKILLed and started again: the session cluster's
only TaskManager, or (``faults_slow``) the Java SDK worker pool, where Kafka IO's read and write
run (the expansion service's EXTERNAL environment). Flink restarts the job from its last
completed checkpoint (read positions and state together, with the preset's bounded restart
strategy), the records after that checkpoint are processed again, and after de-duplication every
output equals the oracle.
"""

from __future__ import annotations

import signal
import time

import pytest

from runners import local
from runners.flink import FlinkRest
from tests.integration.faults.harness import (
    RESUME_TIMEOUT_S,
    FaultReport,
    LiveProducer,
    OutputProgress,
    judge_until,
    output_topics,
)
from tests.integration.live import SPEC, SPEEDUP, FlinkJob, live_simulation, pipeline_argv
from tests.integration.test_property_e2e import _topics
from tools.simulate import scaled_spec

pytestmark = [
    pytest.mark.integration,
    pytest.mark.faults,
    pytest.mark.flink,
    pytest.mark.timeout(900),
]

RESTART_TIMEOUT_S = 240.0
KILL_AT_LOG_S = 35


def _wait_restarted(rest: FlinkRest, jid: str, failures_before: int) -> None:
    """Wait (bounded) until ``jid`` has failed once more (its exception history, updated at
    once, unlike the numRestarts metric) and all its tasks run again."""
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while len(rest.failures(jid)) <= failures_before:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {jid} not restarted {RESTART_TIMEOUT_S:.0f} s after")
        time.sleep(1)
    rest.wait_tasks_running(jid, max(1.0, deadline - time.monotonic()))


@pytest.mark.parametrize(
    "worker", ["taskmanager", pytest.param("java-workers", marks=pytest.mark.faults_slow)]
)
def test_taskmanager_killed_restarts_from_checkpoint_without_loss(
    worker,
    kafka_bootstrap,
    expansion_service,
    flink_session_cluster,
    make_topic,
    local_services,
    record_property,
):
    if flink_session_cluster.home is None:
        pytest.fail("the TaskManager can be killed only on the test's own session cluster")
    started = time.monotonic()
    topics = _topics(make_topic)
    argv = pipeline_argv(
        ["--runner=FlinkRunner", f"--job_endpoint={flink_session_cluster.job_endpoint}"],
        scaled_spec(SPEC, SPEEDUP),
        topics,
        kafka_bootstrap,
        expansion_service,
        local_services,
    )
    job = FlinkJob(argv, flink_session_cluster.rest_url, None)
    try:
        with OutputProgress(kafka_bootstrap, output_topics(topics)) as progress:
            sim, _ = live_simulation(int(time.time() * 1000))
            producer = LiveProducer(sim, kafka_bootstrap, topics).start()
            producer.wait_until_log_second(KILL_AT_LOG_S)
            failures_before = len(job.rest.failures(job.jid))
            killed_at = time.monotonic()
            # The worker pool is the session stack's; it comes back on its port, where the
            # expansion service's EXTERNAL environment keeps pointing.
            service, role, home = (
                (local.FLINK_CLUSTER, "taskmanager", flink_session_cluster.home)
                if worker == "taskmanager"
                else (local.JAVA_WORKERS, "main", None)
            )
            local.kill_process(service, signal.SIGKILL, role=role, home=home)
            local.restart_process(service, role=role, home=home)
            _wait_restarted(job.rest, job.jid, failures_before)
            running_at = time.monotonic()
            resumed = progress.grown_since(running_at, progress.latest(), RESUME_TIMEOUT_S)
            producer.join()
            verdict = judge_until(kafka_bootstrap, topics, sim)
            final_state = job.rest.state(job.jid)
            restarts = len(job.rest.failures(job.jid)) - failures_before
    finally:
        job.cancel()
    FaultReport(
        f"{worker}_sigkill",
        "Flink session cluster",
        len(sim.records),
        verdict,
        [None if resumed is None else running_at - killed_at + resumed],
        notes={
            "job_running_again_s": round(running_at - killed_at, 1),
            "restarts": restarts,
            "job_state": final_state,
        },
        started=started,
    ).emit(record_property)
    assert verdict.diffs == [], verdict.diffs
    assert verdict.total_lost == 0
    assert resumed is not None, f"output did not resume within {RESUME_TIMEOUT_S} s"
    assert final_state == "RUNNING"
    assert restarts >= 1
