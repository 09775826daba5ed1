"""The Beam Python SDK worker of a Flink job SIGKILLed mid-stream: Flink restarts, nothing lost.

With the preset's ``--environment_type=LOOPBACK`` the Python worker is the submitting process
itself (it serves the job from a thread), so it cannot be killed without killing the pipeline's
owner, and a Flink restart would find no worker to reach. A deployment that must survive a
worker's death runs Python steps in a worker pool (``--environment_type=EXTERNAL``, Beam's
``worker_pool_main``): Flink asks the pool for a worker process at every (re)start of a stage.
Here the test starts such a pool of its own, submits the job to it, and 35 s into the live log
SIGKILLs every Python worker process the pool started for the job (the pool stays). Flink's
task fails on the broken data channel and restarts from its last checkpoint, the pool starts new
workers, and after de-duplication every output equals the oracle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from runners import _procs
from runners._ports import LOOPBACK, free_port, port_is_free
from tests.integration.faults.harness import (
    FLINK_FAULT,
    RESUME_TIMEOUT_S,
    FaultReport,
    assert_survived,
    flink_live_run,
    wait_restarted,
)
from tests.integration.live import property_topics

pytestmark = [
    *FLINK_FAULT,
    # About 3 min; the default run's worker fault is the TaskManager kill.
    pytest.mark.faults_slow,
]

KILL_AT_LOG_S = 35
POOL_START_TIMEOUT_S = 60.0
WORKERS_TIMEOUT_S = 120.0


@contextlib.contextmanager
def python_worker_pool(log_path: Path) -> Iterator[tuple[str, _procs.Spawned]]:
    """Beam's Python worker pool (``worker_pool_main``) on a free loopback port, started from
    this repository (its workers import the pipeline's modules from here) with this
    interpreter's ``python`` first on PATH (the pool starts workers as ``python -c ...``);
    yields its address and process, stopped with its workers when the block ends."""
    port = free_port()
    venv_bin = str(Path(sys.executable).parent)
    spawned = _procs.spawn(
        [
            sys.executable,
            "-m",
            "apache_beam.runners.worker.worker_pool_main",
            f"--service_port={port}",
        ],
        log_path=log_path,
        env={"PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"},
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        address = f"{LOOPBACK}:{port}"
        _procs.wait_until(
            lambda: not port_is_free(port),
            what=f"the Python worker pool at {address}",
            timeout_s=POOL_START_TIMEOUT_S,
            alive=lambda: _procs.is_alive(spawned.pid, spawned.create_time),
            log_path=log_path,
        )
        yield address, spawned
    finally:
        _procs.stop(spawned.pid, spawned.create_time)


def pool_workers(pool: _procs.Spawned) -> list[psutil.Process]:
    """The SDK worker processes the pool has started (its children)."""
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pool.pid).children(recursive=True)
    return []


def test_python_sdk_worker_killed_restarts_from_checkpoint_without_loss(
    kafka_bootstrap,
    expansion_service,
    flink_session_cluster,
    make_topic,
    local_services,
    tmp_path,
    record_property,
):
    started = time.monotonic()
    topics = property_topics(make_topic)
    with (
        python_worker_pool(tmp_path / "python-worker-pool.log") as (address, pool),
        flink_live_run(
            flink_session_cluster,
            kafka_bootstrap,
            topics,
            expansion_service,
            local_services,
            extra=["--environment_type=EXTERNAL", f"--environment_config={address}"],
        ) as run,
    ):
        run.producer.wait_until_log_second(KILL_AT_LOG_S)
        workers = pool_workers(pool)
        assert workers, "the pool started no Python worker for the job"
        failures_before = len(run.job.rest.failures(run.job.jid))
        killed_at = time.monotonic()
        for worker in workers:
            with contextlib.suppress(psutil.Error):
                worker.send_signal(signal.SIGKILL)
        psutil.wait_procs(workers, timeout=10)
        wait_restarted(run.job.rest, run.job.jid, failures_before)
        running_at = time.monotonic()
        resumed = run.progress.grown_since(running_at, run.progress.latest(), RESUME_TIMEOUT_S)
        verdict, final_state = run.finish()
        restarts = len(run.job.rest.failures(run.job.jid)) - failures_before
        workers_after = len(pool_workers(pool))
    FaultReport(
        "python_worker_sigkill",
        "Flink session cluster",
        len(run.sim.records),
        verdict,
        [None if resumed is None else running_at - killed_at + resumed],
        notes={
            "workers_killed": len(workers),
            "workers_after": workers_after,
            "job_running_again_s": round(running_at - killed_at, 1),
            "restarts": restarts,
            "job_state": final_state,
        },
        started=started,
    ).emit(record_property)
    assert_survived(verdict, final_state, [resumed])
    assert restarts >= 1
