"""Prism: the pipeline process SIGKILLed mid-run and started again; it replays the log.

The pipeline runs as its own process (``python -m pipelines.property --runner=PrismRunner``,
Prism and the Python workers in its process group). Forty seconds into a live log the whole group
gets SIGKILL (no drain), and the same command starts again.

What Prism can promise (``docs/delivery.md``): nothing of its own survives (no checkpoints, state
in memory), and it cannot commit offsets: ``--commit_offsets`` needs stable input, which Prism
2.73 rejects at submission (``pipelines.options`` refuses it). The restarted job therefore reads
from ``--offset_reset=earliest``: the whole log again, with fresh state. At least once: nothing is
lost, everything the first job wrote comes out again (counted here as duplicates), and after
de-duplication every output, the stateful ones included, equals the oracle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.faults.harness import (
    RESUME_TIMEOUT_S,
    FaultReport,
    LiveProducer,
    OutputProgress,
    judge_until,
    output_topics,
)
from tests.integration.live import (
    JOB_START_TIMEOUT_S,
    SPEC,
    SPEEDUP,
    live_simulation,
    pipeline_argv,
    property_topics,
)
from tools.simulate import scaled_spec

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(900)]

KILL_AT_LOG_S = 40
STOP_WAIT_S = 20.0


class PipelineProcess:
    """``python -m pipelines.property ARGV`` in its own process group (Prism and the LOOPBACK
    workers are its children), logging to ``log``."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.property", *argv],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def signal_group(self, sig: int, wait_s: float = STOP_WAIT_S) -> None:
        """Send ``sig`` to the whole group and wait (bounded) until all of it has exited."""
        members = []
        for p in psutil.process_iter():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getpgid(p.pid) == self.proc.pid:
                    members.append(p)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        _, alive = psutil.wait_procs(members, timeout=wait_s)
        if alive and sig != signal.SIGKILL:
            self.signal_group(signal.SIGKILL, wait_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=wait_s)

    def stop(self) -> None:
        if self.proc.poll() is None or psutil.pid_exists(self.proc.pid):
            self.signal_group(signal.SIGTERM)
        self._log.close()


def test_prism_killed_and_restarted_replays_without_loss(
    kafka_bootstrap,
    expansion_service,
    make_topic,
    local_services,
    tmp_path,
    record_property,
):
    started = time.monotonic()
    topics = property_topics(make_topic)
    argv = pipeline_argv(
        ["--runner=PrismRunner"],
        scaled_spec(SPEC, SPEEDUP),
        topics,
        kafka_bootstrap,
        expansion_service,
        local_services,
    )
    first = PipelineProcess(argv, tmp_path / "pipeline-1.log")
    second: PipelineProcess | None = None
    try:
        with OutputProgress(kafka_bootstrap, output_topics(topics)) as progress:
            sim, _ = live_simulation(int(time.time() * 1000))
            producer = LiveProducer(sim, kafka_bootstrap, topics).start()
            producer.wait_until_log_second(KILL_AT_LOG_S)
            # Kill a job that runs: its first output is there (bounded wait).
            assert progress.grown_since(started, 0, JOB_START_TIMEOUT_S) is not None, (
                "the first Prism job wrote nothing"
            )
            first.signal_group(signal.SIGKILL)
            baseline = progress.latest()
            restarted_at = time.monotonic()
            second = PipelineProcess(argv, tmp_path / "pipeline-2.log")
            resumed = progress.grown_since(restarted_at, baseline, RESUME_TIMEOUT_S)
            producer.join()
            verdict = judge_until(kafka_bootstrap, topics, sim)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    FaultReport(
        "prism_pipeline_sigkill",
        "Prism",
        len(sim.records),
        verdict,
        [resumed],
        started=started,
    ).emit(record_property)
    assert verdict.diffs == [], verdict.diffs
    assert verdict.total_lost == 0
    assert resumed is not None, f"output did not resume within {RESUME_TIMEOUT_S} s"
