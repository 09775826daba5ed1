"""Flink's restart strategy is bounded: a permanent failure ends FAILED with its cause.

``test_permanent_failure_ends_failed_with_its_cause``: a streaming job whose step fails on every
element, with the preset's restart strategy (``runners.presets.FLINK_RESTART_ARGS``: 3 restarts
10 s apart), must end FAILED with the step's error as its cause after exactly 3 restarts, not
loop forever (Flink 1.19's default with checkpointing is an unbounded exponential delay).
"""

from __future__ import annotations

import time

import apache_beam as beam

from runners.flink import FlinkRest
from runners.flink.rest import FlinkUnreachable
from runners.presets import FLINK_RESTART_ARGS, StackAddresses, runner_args
from tests.integration.faults.harness import FLINK_FAULT

pytestmark = list(FLINK_FAULT)

PERMANENT_ERROR = "permanent failure injected by the fault suite"
SUBMIT_TIMEOUT_S = 180.0
FAIL_TIMEOUT_S = 300.0  # 3 restarts 10 s apart plus task (re)deployments on 2 shared cores


def _always_fails(element: object) -> object:
    raise RuntimeError(f"{PERMANENT_ERROR}: {element!r}")


def _jobs(rest: FlinkRest) -> list:
    """Flink's jobs, or none for now when the JobManager does not answer in time (seen in CI:
    one ``/jobs/overview`` unanswered for 10 s while the previous test's job was cancelled)."""
    try:
        return rest.jobs()
    except FlinkUnreachable:
        return []


def _state(rest: FlinkRest, jid: str) -> str:
    """The job's state, ``UNANSWERED`` when the JobManager does not answer in time."""
    try:
        return rest.state(jid)
    except FlinkUnreachable:
        return "UNANSWERED"


def _submitted_job(rest: FlinkRest, since_ms: int, wait_s: float = SUBMIT_TIMEOUT_S) -> str:
    """The id of the job submitted at or after ``since_ms``, whatever its state (this job may
    fail before all its tasks ever run, so ``FlinkRest.wait_job_submitted`` does not fit)."""
    deadline = time.monotonic() + wait_s
    while True:
        ours = [j for j in _jobs(rest) if j.start_time_ms >= since_ms - 1000]
        if ours:
            return max(ours, key=lambda j: j.start_time_ms).jid
        if time.monotonic() > deadline:
            raise AssertionError(f"no job submitted within {wait_s:.0f} s")
        time.sleep(1)


def test_permanent_failure_ends_failed_with_its_cause(flink_session_cluster, record_property):
    argv = runner_args(
        [
            "--runner=FlinkRunner",
            f"--job_endpoint={flink_session_cluster.job_endpoint}",
            "--streaming",
        ],
        StackAddresses(),
        uses_kafka=False,
    )
    assert set(FLINK_RESTART_ARGS) <= set(argv)
    rest = FlinkRest(flink_session_cluster.rest_url)
    submitted_ms = int(time.time() * 1000)
    started = time.monotonic()
    pipeline = beam.Pipeline(argv=argv)
    _ = pipeline | beam.Create(["poison"]) | "AlwaysFails" >> beam.Map(_always_fails)
    result = pipeline.run()
    jid = None
    try:
        jid = _submitted_job(rest, submitted_ms)
        deadline = time.monotonic() + FAIL_TIMEOUT_S
        state = _state(rest, jid)
        while state not in ("FAILED", "CANCELED", "FINISHED") and time.monotonic() < deadline:
            time.sleep(2)
            state = _state(rest, jid)
        failed_after_s = time.monotonic() - started
        # Each failure is kept in the job's exception history at once (the numRestarts metric
        # lags up to the REST metric fetcher's 10 s): 4 failures = 3 restarts.
        failures = rest.failures(jid)
        restarts = len(failures) - 1
    finally:
        # Whatever failed above, the job must not outlive the test (in CI a job left
        # restarting here was taken for the next test's job).
        if jid is not None and _state(rest, jid) not in ("FAILED", "CANCELED", "FINISHED"):
            rest.cancel(jid)
        result.cancel()
    record_property("failed_after_s", round(failed_after_s, 1))
    record_property("restarts", restarts)
    print(f"permanent failure: {state} after {failed_after_s:.1f} s, {restarts} restarts")
    assert state == "FAILED"
    assert restarts == 3
    # Each of the 4 attempts failed with the step's own error; the last says the strategy gave up.
    assert len(failures) == 4 and all(PERMANENT_ERROR in f for f in failures), failures[:1]
    assert any(
        "Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy" in f for f in failures
    )
