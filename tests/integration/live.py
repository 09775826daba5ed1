"""Live-run machinery shared by the live tests and the fault suite.

A live run: a streaming job (Flink or Prism) reads both input topics from the earliest offset
while the simulator writes them in real time (each record sent once the wall clock reaches its
CreateTime), the e2e test's log compressed ``SPEEDUP`` times so that it runs in minutes (1 h
windows become 30 s, the 10 min lateness and fraud window 5 s, three hours of events 90 s). The
pipeline runs with the same compressed windows, and the oracle is computed for them.
``tests/integration/test_property_live.py`` has the findings; ``tests/integration/faults/`` breaks
things during such runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from apache_beam.runners.runner import PipelineState

from pipelines import property as property_pipeline
from pipelines.options import PropertyTopics
from runners.flink import FlinkRest, FlinkRestError, embedded_rest_url
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tests.conftest import FLINK_REST_ENV
from tools.simulate import (
    HOUR_MS,
    MINUTE_MS,
    Simulation,
    SimulationSpec,
    compress_time,
    generate,
    produce,
    scaled_spec,
)
from tools.verify import MarketLookup, Summary, differences, read_outputs, summarize
from transforms.io.kafka import EXPANSION_SERVICE_KEY

SPEEDUP = 120
SPEC = SimulationSpec(
    properties=60, users=40, events=300, views=1_200, bots=2, too_late=8, poison_per_class=1
)
JOB_START_TIMEOUT_S = 180  # submission, embedded Flink start, Java workers connecting back
MATCH_TIMEOUT_S = 90  # after the last record was sent: every output must equal the oracle by then
POLL_S = 5.0


def live_simulation(now_ms: int, base: SimulationSpec = SPEC) -> tuple[Simulation, SimulationSpec]:
    """``base`` (default: the e2e test's log) compressed ``SPEEDUP`` times, starting at the next
    5 s boundary a few seconds from now (a multiple of the compressed fraud window, so that each
    bot's burst stays in one window as in the uncompressed log)."""
    end_ms = now_ms // HOUR_MS * HOUR_MS
    spec = dataclasses.replace(base, end_ms=end_ms)
    # The clock of generate() at the span's end: the clock-skewed poison record lands there.
    sim = generate(spec, now_ms=end_ms)
    step_ms = scaled_spec(spec, SPEEDUP).fraud_window_s * 1000
    origin_ms = (now_ms + 2_000) // step_ms * step_ms + step_ms
    return compress_time(sim, spec, SPEEDUP, origin_ms), scaled_spec(spec, SPEEDUP)


def quiet_backlog_spec(now_ms: int, base: SimulationSpec = SPEC) -> SimulationSpec:
    """``base`` (default: the live tests' log) in real time, ending half an hour before the end
    of the latest hour that ended at least 2 min before ``now_ms``: every window of the log ended
    before the wall clock, the last one after the last record (only the idle partitions'
    watermark, which Kafka IO moves to the wall clock, can close it)."""
    last_window_end = (now_ms - 2 * MINUTE_MS) // HOUR_MS * HOUR_MS
    return dataclasses.replace(base, end_ms=last_window_end - HOUR_MS // 2)


def property_topics(make_topic, input_partitions: int = 4) -> PropertyTopics:
    """Fresh topics for every input and output of the property pipeline (``make_topic``, the
    conftest fixture, deletes them after the test): the inputs with ``input_partitions``
    partitions, the outputs with 2."""
    return PropertyTopics(
        **{
            f: make_topic(input_partitions if f in ("events", "views") else 2, suffix=f)
            for f in vars(PropertyTopics())
        }
    )


def session_cluster_argv(
    cluster,
    topics: PropertyTopics,
    kafka_bootstrap: str,
    expansion_service: str,
    services,
    extra: Sequence[str] = (),
) -> list[str]:
    """``pipeline_argv`` of a live run of ``SPEC`` on the Flink session cluster of the
    ``flink_session_cluster`` fixture (``cluster``), through its job server."""
    return pipeline_argv(
        ["--runner=FlinkRunner", f"--job_endpoint={cluster.job_endpoint}"],
        scaled_spec(SPEC, SPEEDUP),
        topics,
        kafka_bootstrap,
        expansion_service,
        services,
        extra,
    )


def pipeline_argv(
    runner_args: Sequence[str],
    spec: SimulationSpec,
    topics: PropertyTopics,
    kafka_bootstrap: str,
    expansion_service: str,
    services,
    extra: Sequence[str] = (),
) -> list[str]:
    """A streaming run (no stop condition) with ``spec``'s compressed time semantics;
    ``runner_args`` name the runner and its endpoint (the presets add the rest)."""
    return [
        *runner_args,
        f"--bootstrap_servers={kafka_bootstrap}",
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: expansion_service}),
        # Nothing produced before the read starts may be missed: read from the earliest offset.
        "--offset_reset=earliest",
        f"--window_size_s={spec.gate_window_s}",
        f"--allowed_lateness_s={spec.allowed_lateness_s}",
        f"--fraud_window_s={spec.fraud_window_s}",
        f"--marketdata_url={services.marketdata_url}",
        f"--redis_url={services.redis_url}",
        *(f"--{field}_topic={name}" for field, name in vars(topics).items()),
        *extra,
    ]


def backfill_argv(
    runner: str,
    request: pytest.FixtureRequest,
    topics: PropertyTopics,
    kafka_bootstrap: str,
    expansion_service: str,
    services,
    stop_ms: int,
) -> list[str]:
    """The README's backfill of ``topics`` on ``runner`` (``FlinkRunner``: the stack's Flink job
    server): a bounded run reading every partition up to ``stop_ms``, the default semantics."""
    argv = [
        f"--runner={runner}",
        f"--bootstrap_servers={kafka_bootstrap}",
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: expansion_service}),
        f"--stop_read_time_ms={stop_ms}",
        f"--marketdata_url={services.marketdata_url}",
        f"--redis_url={services.redis_url}",
        *(f"--{field}_topic={name}" for field, name in vars(topics).items()),
    ]
    if runner == "FlinkRunner":
        argv.append(f"--job_endpoint={request.getfixturevalue('flink_job_server').job_endpoint}")
    return argv


class FlinkJob:
    """One Flink job started by ``pipelines.property.start``, reached over Flink's REST API at
    ``rest_url`` (a session cluster), or else at the embedded Flink's address, which the job
    server writes to its log at ``log_path`` (one embedded Flink per job)."""

    def __init__(self, argv: list[str], rest_url: str | None, log_path: Path | None) -> None:
        if not rest_url and log_path is None:
            pytest.fail("set FLINK_REST_URL with FLINK_JOB_ENDPOINT (a session cluster)")
        offset = log_path.stat().st_size if log_path and log_path.exists() else 0
        submitted_ms = int(time.time() * 1000)
        self.result = property_pipeline.start(argv)
        if not rest_url:
            rest_url = embedded_rest_url(log_path, offset, JOB_START_TIMEOUT_S)
        self.rest = FlinkRest(rest_url)
        self.jid = self.rest.wait_job_submitted(submitted_ms, JOB_START_TIMEOUT_S)

    def cancel(self) -> None:
        with contextlib.suppress(FlinkRestError):
            self.rest.cancel(self.jid, wait_s=60)
        with contextlib.suppress(Exception):  # Beam's own view of the job; Flink's is above
            self.result.cancel()


def wait_for_oracle(
    bootstrap: str,
    topics: PropertyTopics,
    sim: Simulation,
    timeout_s: float,
    market: MarketLookup | None = None,
    consumer_config: dict[str, str] | None = None,
) -> tuple[Summary, list[str]]:
    """Reads every output topic (as ``consumer_config`` adds: a secured cluster's user) every
    ``POLL_S`` until it equals the oracle (and the enriched events the ``market`` data, when
    given) or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        outputs = read_outputs(bootstrap, topics, timeout_s=60, consumer_config=consumer_config)
        summary = summarize(outputs)
        diffs = differences(summary, sim.oracle, market)
        if not diffs or time.monotonic() > deadline:
            return summary, diffs
        time.sleep(POLL_S)


def assert_accounted(summary: Summary, sim: Simulation) -> None:
    """Every input record is counted (valid), dead-lettered or late, exactly once."""
    assert (
        sim.oracle.valid_events + sim.oracle.valid_views + summary.dead_letters + summary.late
        == sum(sim.oracle.records_by_topic.values())
    )


def produce_live(
    sim: Simulation,
    bootstrap: str,
    topics: PropertyTopics,
    records=None,
    producer_config: dict[str, str] | None = None,
) -> None:
    """Writes ``records`` (default: all of ``sim``) in real time; ``producer_config`` adds to
    the producer's settings."""
    produce(
        sim.records if records is None else records,
        bootstrap,
        topics={EVENTS_TOPIC: topics.events, VIEWS_TOPIC: topics.views},
        follow_timestamps=True,
        # A record whose CreateTime is "now" must reach the broker before its partition idles,
        # or the reader may already have moved the watermark past it.
        producer_config={"linger.ms": "0", **(producer_config or {})},
        progress=False,
    )


@dataclasses.dataclass
class SavepointRestart:
    """The live log and second job of ``restarted_half_way``, and what stop and restart took."""

    sim: Simulation
    second: FlinkJob
    savepoint: str
    stop_s: float
    restart_s: float


@contextlib.contextmanager
def restarted_half_way(
    spec: SimulationSpec,
    bootstrap: str,
    topics: PropertyTopics,
    argv: list[str],
    restart_argv: list[str],
    rest_url: str,
    savepoint_dir: Path,
    stop_wait_s: float,
    produce_wait_s: float,
) -> Iterator[SavepointRestart]:
    """A live run stopped with a savepoint half way and resumed from it, on the session
    cluster at ``rest_url``: job ``argv`` reads the first half of a live log of ``spec`` (it
    starts once the job runs) produced in real time; while
    the second half goes out on time (the producers do not wait for the pipeline, so the
    restarted job finds it as a backlog), the job is stopped with a savepoint (Flink's
    stop-with-savepoint, no drain) and ``restart_argv`` resumes from it. Yields once the second
    half is produced; both jobs are cancelled and the producer joined on exit, whatever happens."""
    first = FlinkJob(argv, rest_url, None)
    second: FlinkJob | None = None
    producer: threading.Thread | None = None
    try:
        sim, _ = live_simulation(int(time.time() * 1000), spec)
        half = len(sim.records) // 2
        produce_live(sim, bootstrap, topics, sim.records[:half])
        producer = threading.Thread(
            target=produce_live,
            args=(sim, bootstrap, topics, sim.records[half:]),
            name="second-half",
            daemon=True,
        )
        producer.start()
        stopped_at = time.monotonic()
        savepoint = first.rest.stop(first.jid, target_dir=str(savepoint_dir), wait_s=stop_wait_s)
        stop_s = time.monotonic() - stopped_at
        second = FlinkJob([*restart_argv, f"--savepoint_path={savepoint}"], rest_url, None)
        restart_s = time.monotonic() - stopped_at - stop_s
        producer.join(timeout=produce_wait_s)
        assert not producer.is_alive(), f"the second half was not produced in {produce_wait_s} s"
        yield SavepointRestart(sim, second, savepoint, stop_s, restart_s)
    finally:
        first.cancel()
        if second is not None:
            second.cancel()
        if producer is not None:
            producer.join(timeout=produce_wait_s)


class PrismJob:
    """One Prism job started by ``pipelines.property.start``; Beam's cancel() stops it."""

    def __init__(self, argv: list[str]) -> None:
        self.result = property_pipeline.start(argv)
        deadline = time.monotonic() + JOB_START_TIMEOUT_S
        while self.result.state != PipelineState.RUNNING:
            if self.result.state in (PipelineState.FAILED, PipelineState.CANCELLED):
                pytest.fail(f"the Prism job ended {self.result.state} before it ran")
            if time.monotonic() > deadline:
                pytest.fail(f"the Prism job is {self.result.state} after {JOB_START_TIMEOUT_S} s")
            time.sleep(1)

    def cancel(self) -> None:
        self.result.cancel()


def start_job(
    runner: str, request: pytest.FixtureRequest, argv: Callable[[list[str]], list[str]]
) -> FlinkJob | PrismJob:
    """Starts ``argv(runner_args)`` on ``runner`` (``FlinkRunner``: the stack's Flink job
    server, with FLINK_REST_URL a session cluster behind FLINK_JOB_ENDPOINT, else the embedded
    Flink; ``PrismRunner``: a Prism process of its own) and returns the job once it runs."""
    if runner == "FlinkRunner":
        flink = request.getfixturevalue("flink_job_server")
        return FlinkJob(
            argv(["--runner=FlinkRunner", f"--job_endpoint={flink.job_endpoint}"]),
            os.environ.get(FLINK_REST_ENV),
            flink.log_path,
        )
    return PrismJob(argv(["--runner=PrismRunner"]))
