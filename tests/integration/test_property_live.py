"""The property pipeline live (streaming) on Flink and on Prism, against the simulator's oracle.

A streaming job reads both input topics (unbounded, from the earliest offset) while the simulator
writes them in real time: each record is sent once the wall clock reaches its CreateTime, as the
contract's producers do. The simulated log (listings, views, bots, out-of-order, too-late and
poison records) is the e2e test's, compressed in time ``SPEEDUP`` times so that it runs in minutes:
1 h windows become 30 s, the 10 min lateness and fraud window 5 s, three hours of events 90 s. The
pipeline runs with the same compressed windows, and the oracle is computed for them.

No end markers: once the producer stops, an idle partition's watermark follows the reader's wall
clock (Kafka's CreateTime policy), so the last window closes by itself and the oracle needs no
correction. A Flink job is then cancelled through Flink's REST API (Beam's ``cancel()`` leaves
Flink jobs running, DESIGN.md); a Prism job through Beam. On Prism this live log (CreateTime
follows the send time, out of order by at most the compressed 2 s jitter) came out exact in 3 of 3
runs; session 1's live Prism run that stayed below the oracle is not reproduced by it. Window
firing on Flink needs the preset's checkpointing flags (``runners/flink_event_time.py``), which
``pipelines.property.start`` adds for ``--streaming``.

``test_stop_with_savepoint_and_restart_neither_loses_nor_repeats``: the same live log, stopped
with a savepoint half way (``runners.flink stop``) and resumed from it by a second job, must still
equal the oracle exactly: running counts by zip, fraud counts and open hourly windows survive in
the savepoint, the read resumes at the saved offsets, and no alert, high-value or enriched event
comes out twice. It runs on a Flink session cluster: Beam's Flink runner 2.62 applies
``--savepoint_path`` only when it submits to a cluster (``RemoteStreamEnvironment``); on the
embedded Flink (``[local]``) the option is ignored and the job starts empty ("No checkpoint found
during restore": state lost, records repeated; seen).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from apache_beam.runners.runner import PipelineState

from pipelines import property as property_pipeline
from pipelines.options import PropertyTopics
from pipelines.simulate import (
    EVENTS_TOPIC,
    HOUR_MS,
    VIEWS_TOPIC,
    Simulation,
    SimulationSpec,
    compress_time,
    generate,
    produce,
    scaled_spec,
)
from pipelines.verify import Summary, differences, read_outputs, summarize
from runners.flink import FlinkRest, FlinkRestError, embedded_rest_url
from tests.conftest import FLINK_REST_ENV
from tests.integration.test_property_e2e import _topics
from transforms.io.kafka import EXPANSION_SERVICE_KEY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SPEEDUP = 120
SPEC = SimulationSpec(
    properties=60, users=40, events=300, views=1_200, bots=2, too_late=8, poison_per_class=1
)
JOB_START_TIMEOUT_S = 180  # submission, embedded Flink start, Java workers connecting back
MATCH_TIMEOUT_S = 90  # after the last record was sent: every output must equal the oracle by then
POLL_S = 5.0


def live_simulation(now_ms: int) -> tuple[Simulation, SimulationSpec]:
    """The e2e test's log compressed ``SPEEDUP`` times, starting at the next 5 s boundary a few
    seconds from now (a multiple of the compressed fraud window, so that each bot's burst stays
    in one window as in the uncompressed log)."""
    end_ms = now_ms // HOUR_MS * HOUR_MS
    spec = dataclasses.replace(SPEC, end_ms=end_ms)
    # The clock of generate() at the span's end: the clock-skewed poison record lands there.
    sim = generate(spec, now_ms=end_ms)
    step_ms = scaled_spec(spec, SPEEDUP).fraud_window_s * 1000
    origin_ms = (now_ms + 2_000) // step_ms * step_ms + step_ms
    return compress_time(sim, spec, SPEEDUP, origin_ms), scaled_spec(spec, SPEEDUP)


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
    bootstrap: str, topics: PropertyTopics, sim: Simulation, timeout_s: float
) -> tuple[Summary, list[str]]:
    """Reads every output topic every ``POLL_S`` until it equals the oracle or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        summary = summarize(read_outputs(bootstrap, topics, timeout_s=60))
        diffs = differences(summary, sim.oracle)
        if not diffs or time.monotonic() > deadline:
            return summary, diffs
        time.sleep(POLL_S)


def assert_accounted(summary: Summary, sim: Simulation) -> None:
    """Every input record is counted (valid), dead-lettered or late, exactly once."""
    assert (
        sim.oracle.valid_events + sim.oracle.valid_views + summary.dead_letters + summary.late
        == sum(sim.oracle.records_by_topic.values())
    )


def produce_live(sim: Simulation, bootstrap: str, topics: PropertyTopics, records=None) -> None:
    produce(
        sim.records if records is None else records,
        bootstrap,
        topics={EVENTS_TOPIC: topics.events, VIEWS_TOPIC: topics.views},
        follow_timestamps=True,
        # A record whose CreateTime is "now" must reach the broker before its partition idles,
        # or the reader may already have moved the watermark past it.
        producer_config={"linger.ms": "0"},
        progress=False,
    )


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


@pytest.mark.parametrize(
    "runner", [pytest.param("FlinkRunner", marks=pytest.mark.flink), "PrismRunner"]
)
def test_live_run_equals_the_oracle(
    runner,
    request,
    kafka_bootstrap,
    expansion_service,
    make_topic,
    local_services,
    record_property,
):
    topics = _topics(make_topic)
    spec = scaled_spec(SPEC, SPEEDUP)
    if runner == "FlinkRunner":
        flink = request.getfixturevalue("flink_job_server")
        runner_args = ["--runner=FlinkRunner", f"--job_endpoint={flink.job_endpoint}"]
        argv = pipeline_argv(
            runner_args, spec, topics, kafka_bootstrap, expansion_service, local_services
        )
        # FLINK_REST_URL: a session cluster behind FLINK_JOB_ENDPOINT; else the embedded Flink.
        job: FlinkJob | PrismJob = FlinkJob(argv, os.environ.get(FLINK_REST_ENV), flink.log_path)
    else:
        argv = pipeline_argv(
            ["--runner=PrismRunner"],
            spec,
            topics,
            kafka_bootstrap,
            expansion_service,
            local_services,
        )
        job = PrismJob(argv)
    try:
        # Compressed from now on: the job runs before the first record is due.
        sim, _ = live_simulation(int(time.time() * 1000))
        started = time.monotonic()
        produce_live(sim, kafka_bootstrap, topics)
        produced_s = time.monotonic() - started
        summary, diffs = wait_for_oracle(kafka_bootstrap, topics, sim, MATCH_TIMEOUT_S)
        settled_s = time.monotonic() - started - produced_s
    finally:
        job.cancel()
    record_property("live_produce_s", round(produced_s, 1))
    record_property("live_last_record_to_all_outputs_equal_s", round(settled_s, 1))
    print(
        f"{runner}: produced {len(sim.records)} records in {produced_s:.1f} s; outputs equal "
        f"{settled_s:.1f} s after the last one"
        if not diffs
        else f"{runner} differences: {diffs}"
    )
    assert diffs == []
    assert_accounted(summary, sim)


@pytest.mark.flink
def test_stop_with_savepoint_and_restart_neither_loses_nor_repeats(
    kafka_bootstrap,
    expansion_service,
    flink_session_cluster,
    make_topic,
    local_services,
    tmp_path,
    record_property,
):
    topics = _topics(make_topic)
    group = f"test-live-restart-{time.time_ns()}"
    argv = pipeline_argv(
        ["--runner=FlinkRunner", f"--job_endpoint={flink_session_cluster.job_endpoint}"],
        scaled_spec(SPEC, SPEEDUP),
        topics,
        kafka_bootstrap,
        expansion_service,
        local_services,
        # No --commit_offsets: on this Flink runner it fails the read task at every checkpoint
        # (docs/delivery.md); Flink's savepoint holds the read positions instead.
        extra=[f"--consumer_group={group}"],
    )
    first = FlinkJob(argv, flink_session_cluster.rest_url, None)
    second: FlinkJob | None = None
    producer: threading.Thread | None = None
    try:
        sim, _ = live_simulation(int(time.time() * 1000))
        half = len(sim.records) // 2
        produce_live(sim, kafka_bootstrap, topics, sim.records[:half])
        # The producers do not wait for the pipeline: the second half goes out on time while
        # the job stops and restarts, and the restarted job finds it as a backlog.
        producer = threading.Thread(
            target=produce_live,
            args=(sim, kafka_bootstrap, topics, sim.records[half:]),
            name="second-half",
            daemon=True,
        )
        producer.start()
        stopped_at = time.monotonic()
        savepoint = first.rest.stop(first.jid, target_dir=str(tmp_path / "savepoints"), wait_s=120)
        stop_s = time.monotonic() - stopped_at
        second = FlinkJob(
            [*argv, f"--savepoint_path={savepoint}"], flink_session_cluster.rest_url, None
        )
        restart_s = time.monotonic() - stopped_at - stop_s
        producer.join(timeout=180)
        assert not producer.is_alive(), "the second half was not produced within 180 s"
        summary, diffs = wait_for_oracle(kafka_bootstrap, topics, sim, MATCH_TIMEOUT_S)
    finally:
        first.cancel()
        if second is not None:
            second.cancel()
        if producer is not None:
            producer.join(timeout=180)
    record_property("stop_with_savepoint_s", round(stop_s, 1))
    record_property("restart_from_savepoint_s", round(restart_s, 1))
    print(f"savepoint {savepoint}: stop {stop_s:.1f} s, restart {restart_s:.1f} s; {diffs}")
    assert diffs == []
    assert_accounted(summary, sim)
