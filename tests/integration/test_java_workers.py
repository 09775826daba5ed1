"""A cancelled job leaves nothing behind in the Java worker pool, where Kafka IO runs.

The property pipeline runs streaming (no stop condition) on empty input topics, so Kafka IO's
read keeps a consumer per partition open in the pool (and its write a producer per output);
then the job is cancelled. Within ``RELEASE_TIMEOUT_S`` the pool's process tree must hold no
more file descriptors than before the job (a few of slack for gRPC's own). With Beam's
thread-based Java pool it never did: every cancelled job's Kafka clients stayed, and after ~24
jobs of 12 partitions the pool had 19 907 of its 20 000 descriptors and the next job failed.
"""

from __future__ import annotations

import contextlib
import time

import psutil
import pytest

from runners import local
from tests.integration.live import SPEC, pipeline_argv, property_topics, start_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

#: Bounds on waits (they fail a test whose event never comes; no speed claim).
OPEN_TIMEOUT_S = 180
RELEASE_TIMEOUT_S = 90
#: Descriptors the pool may keep after a job beyond its count before it (gRPC channels to the
#: runner's services that close lazily); a job's Kafka clients are hundreds.
SLACK_FDS = 16
#: The pool holds this many more descriptors once the job's Kafka clients are open.
OPENED_FDS = 40


def _pool_fds(pid: int) -> int:
    """Open descriptors of the pool and every process under it (its workers)."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker that ended meanwhile
            total += proc.num_fds()
    return total


def _wait_fds(pid: int, ok, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    fds = _pool_fds(pid)
    while not ok(fds) and time.monotonic() < deadline:
        time.sleep(2)
        fds = _pool_fds(pid)
    return fds


@pytest.mark.parametrize(
    "runner", [pytest.param("FlinkRunner", marks=pytest.mark.flink), "PrismRunner"]
)
def test_cancelled_job_releases_its_kafka_clients_in_the_java_worker_pool(
    runner, request, kafka_bootstrap, expansion_service, make_topic, local_services, record_property
):
    stack = local.Stack.load()
    if not stack.is_running(local.JAVA_WORKERS):
        pytest.fail("the stack's java-workers does not run (the expansion service points at it)")
    pid = stack.record(local.JAVA_WORKERS).pid
    topics = property_topics(make_topic)
    # Before the job: whatever earlier jobs left in a long-lived pool counts as the baseline.
    before = _pool_fds(pid)
    job = start_job(
        runner,
        request,
        lambda runner_args: pipeline_argv(
            runner_args, SPEC, topics, kafka_bootstrap, expansion_service, local_services
        ),
    )
    try:
        running = _wait_fds(pid, lambda fds: fds >= before + OPENED_FDS, OPEN_TIMEOUT_S)
    finally:
        job.cancel()
    assert running >= before + OPENED_FDS, (
        f"the job's Kafka IO never opened its clients in the pool ({before} -> {running} fds)"
    )
    after = _wait_fds(pid, lambda fds: fds <= before + SLACK_FDS, RELEASE_TIMEOUT_S)
    record_property("pool_fds", {"before": before, "running": running, "after": after})
    assert after <= before + SLACK_FDS, (
        f"{RELEASE_TIMEOUT_S} s after the job was cancelled the Java worker pool holds {after}"
        f" descriptors ({before} before the job, {running} while it ran): its Kafka clients"
        " were not released"
    )
