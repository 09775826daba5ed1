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
from tests.integration.faults.harness import (
    FLINK_FAULT,
    RESUME_TIMEOUT_S,
    FaultReport,
    assert_survived,
    flink_live_run,
    wait_restarted,
)
from tests.integration.live import property_topics

pytestmark = list(FLINK_FAULT)

KILL_AT_LOG_S = 35


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
    topics = property_topics(make_topic)
    with flink_live_run(
        flink_session_cluster, kafka_bootstrap, topics, expansion_service, local_services
    ) as run:
        run.producer.wait_until_log_second(KILL_AT_LOG_S)
        failures_before = len(run.job.rest.failures(run.job.jid))
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
        wait_restarted(run.job.rest, run.job.jid, failures_before)
        running_at = time.monotonic()
        resumed = run.progress.grown_since(running_at, run.progress.latest(), RESUME_TIMEOUT_S)
        verdict, final_state = run.finish()
        restarts = len(run.job.rest.failures(run.job.jid)) - failures_before
    FaultReport(
        f"{worker}_sigkill",
        "Flink session cluster",
        len(run.sim.records),
        verdict,
        [None if resumed is None else running_at - killed_at + resumed],
        notes={
            "job_running_again_s": round(running_at - killed_at, 1),
            "restarts": restarts,
            "job_state": final_state,
        },
        started=started,
    ).emit(record_property)
    assert_survived(verdict, final_state, [resumed])
    assert restarts >= 1
