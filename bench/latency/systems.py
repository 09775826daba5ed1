"""The measured systems as they run during a latency run: the raw loop and Quix Streams in
their own process or thread, Beam's pipeline on Prism or Flink (started, watched, cancelled)."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.latency.config import LATENCY_PRODUCER, QUIX_IDLE_S
from bench.workload import (
    OUTPUT_FIELDS,
    REPO_ROOT,
)
from pipelines.options import PropertyTopics

LOG = logging.getLogger("bench.latency")


@dataclass
class LatencyRun:
    """One system's latency run (ms); see the module docstring."""

    system: str
    records: int
    rate_eps: float
    max_eps: float
    achieved_eps: float
    paths: dict[str, dict[str, Any]]
    cdf: dict[str, list[tuple[float, float]]]
    unmatched: dict[str, int]
    correct: bool
    differences: list[str]
    outputs: dict[str, int]
    warmup_s: float
    cpu_s_per_million: float
    cpu_by_process: dict[str, float]
    flags: list[str]
    effective: dict[str, Any] = field(default_factory=dict)
    note: str = ""


class Running:
    """A system running in the background: ``stop()`` ends it (bounded) and returns a note."""

    def stop(self) -> str:
        raise NotImplementedError


class RawRunning(Running):
    """``bench.raw_loop`` in a thread of this process, consuming live up to the end offsets."""

    def __init__(self, bootstrap: str, topics: PropertyTopics, stops: dict, rules) -> None:
        from bench import raw_loop

        self.error: BaseException | None = None

        def target() -> None:
            try:
                raw_loop.run(
                    bootstrap,
                    {"events": topics.events, "views": topics.views},
                    {name: getattr(topics, f) for name, f in OUTPUT_FIELDS.items()},
                    stops,
                    rules=rules,
                    timeout_s=3600,
                    producer_config=LATENCY_PRODUCER,
                    consume_batch=500,
                    consume_timeout_s=0.01,
                )
            except BaseException as exc:  # reported by stop()
                self.error = exc

        self.thread = threading.Thread(target=target, name="raw-loop", daemon=True)
        self.thread.start()

    def stop(self) -> str:
        self.thread.join(timeout=600)
        if self.thread.is_alive() or self.error:
            raise RuntimeError(f"raw loop did not end cleanly: {self.error!r}")
        return "thread; consume <= 500 records / 10 ms; producer linger 1 ms; FALLBACK enrichment"


class QuixRunning(Running):
    """``bench.quix_topology`` in its own venv, consuming live up to the end offsets."""

    def __init__(
        self, python: Path, bootstrap: str, topics: PropertyTopics, stops: dict, rules
    ) -> None:
        arguments = {
            "bootstrap": bootstrap,
            "inputs": {"events": topics.events, "views": topics.views},
            "outputs": {name: getattr(topics, f) for name, f in OUTPUT_FIELDS.items()},
            "idle_s": QUIX_IDLE_S,
            "stop_offsets": [[t, p, end] for (t, p), end in stops.items()],
            "producer_extra": LATENCY_PRODUCER,
            "rules": dataclasses.asdict(rules),
        }
        self.proc = subprocess.Popen(
            [str(python), "-m", "bench.quix_topology", json.dumps(arguments)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> str:
        try:
            _, err = self.proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=30)
            raise
        if self.proc.returncode != 0:
            raise RuntimeError(f"quix exited {self.proc.returncode}: {err[-3000:]}")
        return "subprocess; producer linger 1 ms; FALLBACK enrichment"


class BeamRunning(Running):
    """``pipelines.property`` streaming on Prism or Flink (embedded, through the job server; or,
    for ``flink_cluster``, the session cluster of ``stack``, reached at its REST address)."""

    def __init__(self, system: str, argv: Sequence[str], stack) -> None:
        from pipelines import property as property_pipeline
        from runners import local

        self.system = system
        self.rest_url = stack.flink_rest_url if system == "flink_cluster" else None
        self.log_path = stack.log_path(local.FLINK_JOB_SERVER)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.argv = list(argv)
        self.submitted_ms = int(time.time() * 1000)
        self.result = property_pipeline.start(self.argv)

    def effective_options(self) -> dict[str, Any]:
        """The latency-relevant options the Flink job actually runs with, read back from Flink
        (the job's Beam options in its user config; the checkpoint interval Flink applies): a
        flag the job server does not know is dropped with only a client-side warning."""
        if self.system not in ("flink", "flink_cluster"):
            return {}
        import urllib.request

        from runners.flink import FlinkRest

        url = self._rest_url()
        jobs = [j for j in FlinkRest(url).jobs() if j.start_time_ms >= self.submitted_ms - 1000]
        if not jobs:
            return {}

        def get(path: str) -> dict[str, Any]:
            with urllib.request.urlopen(url + path, timeout=10) as reply:
                return json.load(reply)

        jid = max(jobs, key=lambda j: j.start_time_ms).jid
        user = get(f"/jobs/{jid}/config").get("execution-config", {}).get("user-config", {})
        keys = (
            "maxBundleSize",
            "maxBundleTimeMills",
            "checkpointingInterval",
            "finishBundleBeforeCheckpointing",
            "minPauseBetweenCheckpoints",
            "autoWatermarkInterval",
            "parallelism",
        )
        out: dict[str, Any] = {k: user[k] for k in keys if k in user}
        out["flink_checkpoint_interval_ms"] = get(f"/jobs/{jid}/checkpoints/config").get("interval")
        return out

    def _rest_url(self) -> str:
        """Flink's REST address: the session cluster's, or the embedded Flink's (in the job
        server's log)."""
        from runners.flink import embedded_rest_url

        return self.rest_url or embedded_rest_url(self.log_path, self.log_offset, wait_s=60)

    def stop(self) -> str:
        if self.system in ("flink", "flink_cluster"):
            # Beam's cancel() leaves the Flink job running: cancel it in Flink itself.
            from runners.flink import FlinkRest, FlinkRestError

            try:
                rest = FlinkRest(self._rest_url())
                for job in rest.jobs():
                    if job.start_time_ms >= self.submitted_ms - 1000:
                        LOG.info("flink job %s: %s", job.jid, rest.cancel(job.jid))
            except FlinkRestError as exc:
                LOG.warning("flink: cancelling through the REST API: %s", exc)
        try:
            self.result.cancel()
        except Exception as exc:
            LOG.info("%s: Beam cancel: %s", self.system, exc)
        return "streaming"
