"""End-to-end latency at 50 % load: input append -> output append, per system and output path.

    python -m bench.latency [--events 500000 | --small] [--systems raw,quix,prism,flink]
                            [--rate flink=130,prism=2000] [--load 0.5] [--max_records 100000]
                            [--prism_args '...'] [--flink_args '...'] [--label NAME]

For each system, one at a time, on ``bench.compare``'s private stack (its own ``--home``, default
``.local/bench-latency``; Kafka, Beam's Java services, the Flink job server, and the market-data
service with Redis so that the Beam pipelines enrich over HTTP from a warm cache):

1. fresh input topics (CreateTime: the producer writes the contract's timestamps) and fresh output
   topics (``LogAppendTime``: each output record carries the broker's append time);
2. the system starts in STREAMING mode: the raw loop and Quix Streams consume live up to the
   known end offsets; Prism and Flink run ``pipelines.property`` unbounded (Flink with the
   preset's checkpointing and ``--finish_bundle_before_checkpointing``);
3. warm-up: one LISTING_UPDATED event per (zip code, property type) of the simulation (the
   market-data cache then holds every key the measured events ask for) and 200 views of warm-up
   users, sent at once; the run waits until every warm-up event came out enriched (the system
   runs end to end). Warm-up records are in the oracle and excluded from the statistics;
4. the live log: the simulation (``bench.compare.scaled_spec``: 1 event : 4 views, bots,
   out-of-order, too-late and poison records) compressed in time 120 times
   (``tools.simulate.compress_time``, as the live end-to-end test does: its 3 h of event
   time last 90 s, 1 h windows 30 s, the 10 min lateness and fraud window 5 s; the pipeline and
   the references run with those windows) and sent by a child process, each record once the
   wall clock reaches its timestamp (the contract's live producer: CreateTime = event time, never
   after the send). Its size sets the rate: ``--load`` (50 %) of the system's maximum events/s
   times 90 s, the maximum taken from ``bench/results/compare*.json`` of ``--events`` records or
   from ``--rate``; capped at ``--max_records`` (the load is then lower: reported);
5. once the outputs have been quiet for 30 s (Beam) or the raw loop / Quix ended, the job is
   cancelled (Flink through Flink's REST API: Beam's cancel leaves the Flink job running), the
   outputs are read back with their append times and checked against the oracle.

Input time: the wall clock when the producer handed the record to its client (``linger.ms`` 1),
in the producer process, on the broker's machine (the broker stamps LogAppendTime with the same
clock). It is at or before the record's append time, so each latency is an upper bound, by the
producer's send delay (probed here: p50 20 ms, p99 0.5 s on the loaded 2-core machine).

Latency per output record (``output append - input time of its cause``), by path:

- ``enriched``: the stateless path (decode -> validate -> gate -> enrich from the warm cache ->
  encode -> write); cause = the LISTING_UPDATED event with the same ``event_id``. Beam enriches
  over HTTP with the Redis cache; the raw loop and Quix write FALLBACK (no HTTP call, no cache
  lookup: they have no market-data client), so theirs is the same path minus the lookup;
- ``high_value``: stateless, cause = the event with the same ``event_id``;
- ``alerts``: cause = the crossing view, the 51st view of that user in that fraud window in its
  partition's log order (the alert id names user and window);
- ``counts_by_zip``: the update with count k of a zip is caused by the k-th counted event of that
  zip in send order (the earliest moment a count of k can exist);
- ``views_hourly`` (another meaning, reported apart): the first pane of each (property, window),
  from the window's end (event time = wall clock in the live log) to its append. The raw loop
  emits hourly counts only when its input ends (bounded topology); Quix a running count per view.

Results: a table per system and path (p50/p90/p99/max ms, the p50 of each fifth of the run to
show a growing backlog), ``bench/results/latency.json``, ``latency.html`` + ``latency.png`` (CDF
per path, one line per system; ``bench.report``), linked from ``compare.html``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import shlex
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.compare import (
    DEFAULT_EVENTS,
    OUTPUT_FIELDS,
    PARTITIONS,
    REPO_ROOT,
    RESULTS,
    RUNNERS,
    SMALL_EVENTS,
    SYSTEMS,
    ProcessMeter,
    create_topics,
    ensure_quix_venv,
    scaled_spec,
    system_topics,
    topic_flags,
)
from bench.compare import start_stack as compare_stack
from pipelines.options import PropertyTopics
from pipelines.property import OUTPUT_SPECS
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate import (
    HOUR_MS,
    PlannedRecord,
    Simulation,
    SimulationSpec,
    compress_time,
    compute_oracle,
    generate,
    partition_for,
    produce,
)
from tools.simulate import scaled_spec as time_scaled_spec
from tools.verify import differences, summarize
from transforms.codec import decode_record, encode_record

LOG = logging.getLogger(__name__)

DEFAULT_HOME = REPO_ROOT / ".local" / "bench-latency"
DEFAULT_LOAD = 0.5
DEFAULT_MAX_RECORDS = 100_000
MIN_RECORDS = 2_000
# The live log's time compression (tools.simulate.compress_time): the simulator's 3 h of
# event time are sent in 90 s; 1 h windows last 30 s, lateness and the fraud window 5 s.
SPEEDUP = 120
# The references have no window firing to time (bench.raw_loop, bench.quix_topology docstrings).
NO_WINDOW_FIRING = {
    "raw": "the raw loop emits hourly counts once, when its input ends",
    "quix": "Quix emits a running count per view, not a pane when the window closes",
    "kstreams": "Kafka Streams (the seed: no suppress) emits count updates at each commit",
}
PATHS = ("enriched", "high_value", "alerts", "counts_by_zip", "views_hourly")
QUANTILES = (50, 90, 99)
WARMUP_VIEWS = 200
WARMUP_TIMEOUT_S = 600.0
QUIET_S = 30.0  # a streaming job is done when its outputs grew for none of these seconds
QUIET_S_RAW = 5.0
# Quix stops after this long without input. Between the warm-up and the live log there is a
# pause (the next window boundary, up to one compressed hour = 30 s, plus building the live log
# and its oracle): with 20 s, a loaded machine made Quix exit before the live log (seen: only the
# warm-up processed). Costs this long at the end of a Quix run; latencies are unaffected.
QUIX_IDLE_S = 90.0
# Producer of the measured input: send each record at once (linger adds to every latency).
INPUT_PRODUCER = {"linger.ms": 1}
LATENCY_PRODUCER = {"linger.ms": 1}


# ---- plain helpers: statistics ------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0 < q ≤ 100) of ascending ``sorted_values``."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile q must be in (0, 100], got {q}")
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def latency_stats(values_ms: Iterable[float]) -> dict[str, Any]:
    """``count``, ``p50``/``p90``/``p99`` (nearest rank) and ``max`` in ms; count 0 when empty."""
    values = sorted(values_ms)
    if not values:
        return {"count": 0}
    stats: dict[str, Any] = {"count": len(values)}
    for q in QUANTILES:
        stats[f"p{q}"] = round(percentile(values, q), 1)
    stats["max"] = round(values[-1], 1)
    return stats


def trend(samples: Iterable[tuple[float, float]], parts: int = 5) -> list[float]:
    """Median latency of each ``parts``-th of the samples ``(input time, latency)`` in input-time
    order: flat when the system keeps up with the rate, rising when a backlog grows."""
    ordered = [latency for _, latency in sorted(samples)]
    if len(ordered) < parts:
        return []
    size = len(ordered) / parts
    return [
        round(percentile(sorted(ordered[int(i * size) : int((i + 1) * size)]), 50), 1)
        for i in range(parts)
    ]


def cdf(values_ms: Iterable[float], points: int = 200) -> list[tuple[float, float]]:
    """At most ``points`` (latency ms, fraction of records at or below it) pairs, ascending."""
    values = sorted(values_ms)
    if not values:
        return []
    n = len(values)
    step = max(1, n // points)
    picked = list(range(step - 1, n, step))
    if picked[-1] != n - 1:
        picked.append(n - 1)
    return [(round(values[i], 1), round((i + 1) / n, 4)) for i in picked]


# ---- plain helpers: which input caused which output ---------------------------------------------


@dataclass(frozen=True)
class Cause:
    """The input record an output is attributed to: its send time and its index in the log."""

    sent_ms: float
    index: int


@dataclass
class Causes:
    """The cause of each output of the stateless and stateful paths, indexed from the planned log:
    events by ``event_id``, the k-th counted event of each zip, the crossing view of each alert."""

    by_event_id: dict[str, Cause] = field(default_factory=dict)
    zip_updates: dict[str, list[Cause]] = field(default_factory=dict)
    alert: dict[str, Cause] = field(default_factory=dict)


def find_causes(
    records: Sequence[PlannedRecord],
    sent_ms: Sequence[float],
    counted: Sequence[bool],
    fraud_threshold: int,
    fraud_window_ms: int,
) -> Causes:
    """Index the planned log (records in send order, each with its send time and whether the
    topology counts it) by what each output path needs to find its cause."""
    if not len(records) == len(sent_ms) == len(counted):
        raise ValueError("records, sent_ms and counted must have the same length")
    causes = Causes()
    fraud: Counter[str] = Counter()
    zips: dict[str, list[Cause]] = defaultdict(list)
    for i, (r, sent, ok) in enumerate(zip(records, sent_ms, counted, strict=True)):
        if not ok or r.payload is None:
            continue
        cause = Cause(sent, i)
        if r.topic == EVENTS_TOPIC:
            causes.by_event_id[r.payload["event_id"]] = cause
            zips[r.payload["zip_code"]].append(cause)
        else:
            start = r.payload["event_time"] - r.payload["event_time"] % fraud_window_ms
            alert_id = f"{r.payload['user_id']}:{start}"
            fraud[alert_id] += 1
            if fraud[alert_id] == fraud_threshold + 1:
                causes.alert[alert_id] = cause
    causes.zip_updates = dict(zips)
    return causes


def counted_records(records: Sequence[PlannedRecord], spec: SimulationSpec) -> list[bool]:
    """Which records the topology counts: valid and not late in the log (the oracle's rule)."""
    gate_ms, lateness_ms = spec.gate_window_s * 1000, spec.allowed_lateness_s * 1000
    stream_time: dict[tuple[str, int], int] = {}
    out = []
    for r in records:
        if r.kind.startswith("poison:") or r.payload is None:
            out.append(False)
            continue
        et = r.payload["event_time"]
        where = (r.topic, r.partition)
        seen = stream_time.get(where)
        if seen is not None and seen >= et - et % gate_ms + gate_ms + lateness_ms:
            out.append(False)
            continue
        stream_time[where] = et if seen is None else max(seen, et)
        out.append(True)
    return out


TimedOutput = tuple[int, dict[str, Any]]  # (append time ms, decoded record)


def path_latencies(
    path: str,
    outputs: Sequence[TimedOutput],
    causes: Causes,
    measured_from: int,
    hourly_ms: int,
    window_from_ms: int = 0,
) -> tuple[list[tuple[float, float]], int]:
    """``(input time, latency)`` pairs (ms) of one path's outputs whose cause is at or after
    ``measured_from`` in the log, and how many outputs had no cause. Each key (event id, alert
    id, zip and count, window) counts once. ``views_hourly``: the first pane of each window,
    measured from the window's end (event time = wall clock in a live log), windows ending
    before ``window_from_ms`` (the warm-up's) left out."""
    latencies: list[tuple[float, float]] = []
    unmatched = 0
    seen: set[Any] = set()
    for append_ms, value in outputs:
        cause: Cause | None = None
        if path in ("enriched", "high_value"):
            key: Any = value["event_id"]
            cause = causes.by_event_id.get(key)
        elif path == "alerts":
            key = value["alert_id"]
            cause = causes.alert.get(key)
        elif path == "counts_by_zip":
            key = (value["zip_code"], value["count"])
            updates = causes.zip_updates.get(value["zip_code"], [])
            cause = updates[value["count"] - 1] if 0 < value["count"] <= len(updates) else None
        elif path == "views_hourly":
            key = (value["property_id"], value["window_start"])
            if key in seen:
                continue  # the window's first pane is its firing; later panes re-fire it
            seen.add(key)
            end = value["window_start"] + hourly_ms
            if end > window_from_ms:
                latencies.append((end, append_ms - end))
            continue
        else:
            raise ValueError(f"unknown path {path!r}")
        if key in seen:
            continue
        seen.add(key)
        if cause is None:
            unmatched += 1
        elif cause.index >= measured_from:
            latencies.append((cause.sent_ms, append_ms - cause.sent_ms))
    return latencies, unmatched


def warmup_records(
    sim_records: Sequence[PlannedRecord], spec: SimulationSpec
) -> list[PlannedRecord]:
    """Records that warm a system up: one LISTING_UPDATED event per (zip, property type) of the
    simulation's events (so the market-data cache then holds every key the measured events ask
    for) and ``WARMUP_VIEWS`` views of warm-up users (``WARM...``, far below the fraud threshold),
    all one hour of event time before the simulated span (a window of their own). They belong to
    the log: the oracle is computed over warm-up + simulation.
    """
    events = [r for r in sim_records if r.topic == EVENTS_TOPIC and r.kind == "valid"]
    views = [r for r in sim_records if r.topic == VIEWS_TOPIC and r.kind == "valid"]
    if not events or not views:
        raise ValueError("the simulation has no valid events or views to warm up with")
    at_ms = min(r.payload["event_time"] for r in (*events, *views))
    at_ms = at_ms - at_ms % HOUR_MS - HOUR_MS
    keys: dict[tuple[str, str], dict[str, Any]] = {}
    for r in events:
        keys.setdefault((r.payload["zip_code"], r.payload["property_type"]), r.payload)
    planned = [
        (
            {
                **p,
                "event_id": f"warmup-{i:05d}",
                "event_type": "LISTING_UPDATED",
                "event_time": at_ms,
            },
            EVENTS_TOPIC,
            "property_id",
            "PropertyEvent",
            1,
        )
        for i, p in enumerate(keys.values())
    ]
    planned += [
        (
            {
                **views[i % len(views)].payload,
                "view_id": f"warmup-{i:05d}",
                "user_id": f"WARM{i % 20:03d}",
                "event_time": at_ms,
            },
            VIEWS_TOPIC,
            "user_id",
            "PropertyView",
            2,
        )
        for i in range(WARMUP_VIEWS)
    ]
    out = []
    for payload, topic, key_field, schema, schema_id in planned:
        key = payload[key_field].encode()
        out.append(
            PlannedRecord(
                topic,
                partition_for(key, spec.partitions),
                key,
                encode_record(payload, schema, schema_id),
                at_ms,
                "valid",
                payload,
            )
        )
    return out


def live_origin_ms(now_ms: float, window_ms: int, lead_ms: int = 2_000) -> int:
    """The first window boundary at least ``lead_ms`` after ``now_ms``: where the compressed
    simulation starts, so that its windows line up with the compressed hours."""
    start = int(now_ms) + lead_ms
    return start + (-start) % window_ms


def log_end_offsets(records: Iterable[PlannedRecord], topics: Mapping[str, str]) -> dict:
    """``(topic, partition) -> end offset`` of fresh topics once ``records`` are produced (the
    simulator assigns every partition, and its producer is idempotent)."""
    ends: Counter[tuple[str, int]] = Counter()
    for r in records:
        ends[(topics[r.topic], r.partition)] += 1
    return dict(ends)


def max_rates(results_dir: Path, records: int) -> dict[str, float]:
    """System -> sustained events/s in the newest ``compare*.json`` of ``records`` records that
    measured that system (runs of a subset of systems each count for their own systems)."""
    found: dict[str, tuple[float, float]] = {}
    for path in results_dir.glob("compare*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("records") != records:
            continue
        when = path.stat().st_mtime
        for row in data.get("results", []):
            eps = float(row.get("sustained_eps") or 0)
            # The Kafka Streams peer is never exact by design (bench.kstreams_bench): its rate
            # counts all the same.
            usable = row.get("correct") or row["system"] == "kstreams"
            if eps > 0 and usable and when > found.get(row["system"], (-1, 0))[0]:
                found[row["system"]] = (when, eps)
    return {system: eps for system, (_, eps) in found.items()}


def parse_rates(text: str | None) -> dict[str, float]:
    """``'raw=10000,flink=60'`` as a dict; ValueError naming ``--rate`` when malformed."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--rate takes system=events_per_s[,...], got {item!r}") from None
        if out[name.strip()] <= 0 or name.strip() not in SYSTEMS:
            raise ValueError(f"--rate: {item!r} needs a system of {list(SYSTEMS)} and a rate > 0")
    return out


# ---- Kafka: outputs with their append times -----------------------------------------------------


def output_sizes(bootstrap: str, topics: Iterable[str]) -> int:
    """Records now in ``topics`` (sum of high watermarks; fresh topics start at offset 0)."""
    from bench.compare import end_offsets

    return sum(end_offsets(bootstrap, topics).values())


def read_timed(bootstrap: str, topic: str, schema: str, timeout_s: float) -> list[TimedOutput]:
    """Every record now in ``topic`` as (append time ms, decoded value), partition by partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"lat-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    deadline = time.monotonic() + timeout_s
    out: list[TimedOutput] = []
    try:
        ends = {}
        for p in range(PARTITIONS):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > 0:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: {len(ends)} partitions left")
            for msg in consumer.consume(5_000, timeout=0.5):
                if msg.error():
                    raise RuntimeError(f"reading {topic}: {msg.error()}")
                p = msg.partition()
                if p in ends and msg.offset() < ends[p]:
                    out.append((msg.timestamp()[1], decode_record(msg.value(), schema)[1]))
                if p in ends and msg.offset() + 1 >= ends[p]:
                    del ends[p]
    finally:
        consumer.close()
    return out


def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Deletes a finished run's topics: the private broker restarts faster with fewer logs."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the futures resolve
    for name, future in admin.delete_topics(list(names), operation_timeout=30).items():
        try:
            future.result(timeout=60)
        except Exception as exc:  # a leftover topic harms no later run
            LOG.warning("could not delete %s: %s", name, exc)


def read_all_timed(bootstrap: str, topics: PropertyTopics) -> dict[str, list[TimedOutput]]:
    return {
        name: read_timed(bootstrap, getattr(topics, spec.topic_field), spec.schema, 600)
        for name, spec in OUTPUT_SPECS.items()
    }


def wait_for_count(bootstrap: str, topic: str, at_least: int, timeout_s: float) -> float:
    """Seconds until ``topic`` holds ``at_least`` records; TimeoutError after ``timeout_s``."""
    started = time.monotonic()
    while output_sizes(bootstrap, [topic]) < at_least:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{topic}: fewer than {at_least} records after {timeout_s:.0f} s")
        time.sleep(1)
    return time.monotonic() - started


def wait_quiet(bootstrap: str, topics: Sequence[str], quiet_s: float, timeout_s: float) -> float:
    """Waits until ``topics`` stop growing for ``quiet_s`` (bounded); returns seconds waited."""
    started = time.monotonic()
    last, since = -1, time.monotonic()
    while time.monotonic() - started < timeout_s:
        size = output_sizes(bootstrap, topics)
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(1)
    return time.monotonic() - started


# ---- the input producer (a child process: not on the system's GIL) -----------------------------


def _produce_live(
    records: list[PlannedRecord], bootstrap: str, topics: dict[str, str]
) -> list[float]:
    sent: list[float] = []
    produce(
        records,
        bootstrap,
        topics=topics,
        follow_timestamps=True,
        producer_config=INPUT_PRODUCER,
        progress=False,
        timeout_s=300,
        sent_ms=sent,
    )
    return sent


def produce_live(
    records: list[PlannedRecord], bootstrap: str, topics: dict[str, str], span_s: float
) -> list[float]:
    """Produces ``records`` from a spawned process, each once the wall clock reaches its
    timestamp (a live log); returns each record's send time (ms)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        job = pool.apply_async(_produce_live, (records, bootstrap, topics))
        return job.get(timeout=span_s * 3 + 300)


# ---- the systems --------------------------------------------------------------------------------


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
    """``pipelines.property`` streaming on Prism or Flink (embedded, through the job server)."""

    def __init__(self, system: str, argv: Sequence[str], stack) -> None:
        from pipelines import property as property_pipeline
        from runners import local

        self.system = system
        self.log_path = stack.log_path(local.FLINK_JOB_SERVER)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.argv = list(argv)
        self.submitted_ms = int(time.time() * 1000)
        self.result = property_pipeline.start(self.argv)

    def effective_options(self) -> dict[str, Any]:
        """The latency-relevant options the Flink job actually runs with, read back from Flink
        (the job's Beam options in its user config; the checkpoint interval Flink applies): a
        flag the job server does not know is dropped with only a client-side warning."""
        if self.system != "flink":
            return {}
        import urllib.request

        from runners.flink import FlinkRest, embedded_rest_url

        url = embedded_rest_url(self.log_path, self.log_offset, wait_s=60)
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

    def stop(self) -> str:
        if self.system == "flink":
            # Beam's cancel() leaves the Flink job running: cancel it in Flink itself.
            from runners.flink import FlinkRest, FlinkRestError, embedded_rest_url

            try:
                rest = FlinkRest(embedded_rest_url(self.log_path, self.log_offset, wait_s=60))
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


def measure(
    system: str,
    records: int,
    rate: float,
    max_eps: float,
    stack,
    pids: dict[str, int],
    seed: int,
    extra: Sequence[str],
    quix_python: Path | None,
) -> LatencyRun:
    """One system's run: fresh topics, start, warm up, the live log at ``rate``, stop, verify."""
    from bench.raw_loop import TopologyRules

    bootstrap = stack.bootstrap_servers
    tag = time.strftime("%H%M%S") + uuid.uuid4().hex[:4]
    inputs = (f"lat-{tag}-events", f"lat-{tag}-views")
    topics = system_topics(system, tag, inputs)
    outputs = [getattr(topics, f) for f in OUTPUT_FIELDS.values()]
    create_topics(bootstrap, inputs)
    create_topics(bootstrap, outputs, append_time=True)

    now_ms = int(time.time() * 1000)
    spec = scaled_spec(records, seed=seed, end_ms=now_ms // HOUR_MS * HOUR_MS)
    # More bots than the throughput run: each alert is one latency sample of the stateful path.
    spec = dataclasses.replace(spec, bots=max(spec.bots, records // 1_000))
    sim = generate(spec, now_ms=now_ms)
    live = time_scaled_spec(spec, SPEEDUP)
    span_s = spec.span_h * 3600 / SPEEDUP
    window_ms = live.hourly_window_s * 1000
    rules = TopologyRules(
        window_size_s=live.gate_window_s,
        allowed_lateness_s=live.allowed_lateness_s,
        fraud_threshold=live.fraud_threshold,
        fraud_window_s=live.fraud_window_s,
        high_value_threshold=live.high_value_threshold,
    )
    flags = [
        f"--window_size_s={live.hourly_window_s}",
        f"--allowed_lateness_s={live.allowed_lateness_s}",
        f"--fraud_window_s={live.fraud_window_s}",
        *extra,
    ]
    # Warm-up records first, compressed to just before now (sent at once); the live log after.
    warm_sim = Simulation(warmup_records(sim.records, spec), sim.oracle)
    warm = compress_time(warm_sim, spec, SPEEDUP, live_origin_ms(now_ms, window_ms) - 2 * window_ms)
    warm_records = warm.records
    warm_events = sum(1 for r in warm_records if r.topic == EVENTS_TOPIC)
    names = {EVENTS_TOPIC: inputs[0], VIEWS_TOPIC: inputs[1]}
    print(
        f"{system}: {len(sim.records)} records in {span_s:.0f} s of live input "
        f"(~{len(sim.records) / span_s:.0f}/s, {len(sim.records) / span_s / max_eps:.0%} of "
        f"{max_eps:.0f}/s) after {len(warm_records)} warm-up records",
        flush=True,
    )

    started = time.monotonic()
    if system == "raw":
        stops = log_end_offsets([*warm_records, *sim.records], names)
        running: Running | None = RawRunning(bootstrap, topics, stops, rules)
    elif system == "quix":
        stops = log_end_offsets([*warm_records, *sim.records], names)
        running = QuixRunning(quix_python, bootstrap, topics, stops, rules)
    elif system == "kstreams":
        from bench.kstreams_bench import LatencyRunning

        stops = log_end_offsets([*warm_records, *sim.records], names)
        running = LatencyRunning(bootstrap, topics, stops, rules, LATENCY_PRODUCER)
    else:
        argv = [f"--runner={RUNNERS[system]}", *topic_flags(topics), *flags]
        running = BeamRunning(system, argv, stack)
    try:
        produce(
            warm_records, bootstrap, topics=names, producer_config=INPUT_PRODUCER, progress=False
        )
        wait_for_count(bootstrap, topics.enriched, warm_events, WARMUP_TIMEOUT_S)
        warmup_s = time.monotonic() - started
        effective = running.effective_options() if isinstance(running, BeamRunning) else {}
        origin_ms = live_origin_ms(time.time() * 1000, window_ms)
        main = compress_time(sim, spec, SPEEDUP, origin_ms).records
        log = [*warm_records, *main]
        oracle = compute_oracle(log, live)
        print(f"{system}: warm after {warmup_s:.1f} s; live log from {origin_ms}", flush=True)
        roots = {"python": os.getpid(), **pids}
        with ProcessMeter(roots) as meter:
            sent = produce_live(main, bootstrap, names, span_s)
            achieved = len(main) / max(1e-3, (sent[-1] - sent[0]) / 1000)
            if system in RUNNERS:
                wait_quiet(bootstrap, outputs, QUIET_S, timeout_s=900)
            ending, running = running, None
            note = ending.stop()
    finally:
        if running is not None:
            running.stop()
    timed = read_all_timed(bootstrap, topics)
    delete_topics(bootstrap, [*inputs, *outputs])
    summary = summarize({name: [v for _, v in rows] for name, rows in timed.items()})
    diffs = differences(summary, oracle)
    # The warm-up records' send times do not matter: they are excluded from the statistics.
    all_sent = [sent[0]] * len(warm_records) + sent
    causes = find_causes(
        log, all_sent, counted_records(log, live), live.fraud_threshold, live.fraud_window_s * 1000
    )
    paths, curves, unmatched = {}, {}, {}
    for path in PATHS:
        if path == "views_hourly" and system in NO_WINDOW_FIRING:
            paths[path], curves[path], unmatched[path] = {"count": 0}, [], 0
            note += f"; views_hourly not measured: {NO_WINDOW_FIRING[system]}"
            continue
        samples, missing = path_latencies(
            path, timed[path], causes, len(warm_records), window_ms, window_from_ms=origin_ms
        )
        values = [latency for _, latency in samples]
        paths[path] = {**latency_stats(values), "trend_p50": trend(samples)}
        curves[path] = cdf(values)
        unmatched[path] = missing
    cpu = meter.cpu_by_process()
    return LatencyRun(
        system=system,
        records=len(main),
        rate_eps=round(len(main) / span_s),
        max_eps=round(max_eps),
        achieved_eps=round(achieved),
        paths=paths,
        cdf=curves,
        unmatched=unmatched,
        correct=not diffs,
        differences=diffs,
        outputs=summary.records,
        warmup_s=round(warmup_s, 1),
        cpu_s_per_million=round(sum(cpu.values()) * 1e6 / len(main), 1),
        cpu_by_process=cpu,
        flags=flags,
        effective=effective,
        note=note,
    )


# ---- the run ------------------------------------------------------------------------------------


def start_stack(home: Path, systems: Sequence[str]):
    """``bench.compare``'s private stack plus the market-data service and Redis."""
    from runners import local

    return compare_stack(home, systems, beam_extras=(local.REDIS, local.MARKETDATA))


def records_for(rate: float, span_s: float, max_records: int) -> int:
    """Records of one system's live log: ``rate`` for ``span_s`` seconds, capped at
    ``max_records`` (the load is then lower), never below ``MIN_RECORDS``."""
    return max(MIN_RECORDS, min(max_records, int(rate * span_s)))


def main(argv: Sequence[str] | None = None) -> int:
    from bench import report
    from runners import local

    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--events",
        type=int,
        default=DEFAULT_EVENTS,
        help="size of the bench.compare run whose events/s are the maxima",
    )
    parser.add_argument("--small", action="store_true", help=f"--events {SMALL_EVENTS}")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, in order")
    parser.add_argument(
        "--rate", help="max events/s per system, e.g. flink=130,prism=2000 (overrides compare)"
    )
    parser.add_argument("--load", type=float, default=DEFAULT_LOAD, help="fraction of the max")
    parser.add_argument(
        "--max_records",
        type=int,
        default=DEFAULT_MAX_RECORDS,
        help="cap on one system's live log (a faster system then runs below --load)",
    )
    # Written --flink_args='--a=1 --b=2': argparse takes a lone "--a=1" after a space for a flag.
    parser.add_argument("--prism_args", default="", help="extra pipeline flags on Prism")
    parser.add_argument(
        "--flink_args",
        default="",
        help="extra pipeline flags on Flink, e.g. --flink_args='--max_bundle_time_mills=100'",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="the bench stack's home")
    parser.add_argument("--keep_stack", action="store_true", help="leave the bench stack up")
    parser.add_argument("--label", default="", help="results in latency[-LABEL].json/.html")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not systems or set(systems) - set(SYSTEMS):
        parser.error(f"--systems from {list(SYSTEMS)}, got {systems}")
    if not 0 < args.load <= 1:
        parser.error(f"--load must be in (0, 1], got {args.load}")
    events = SMALL_EVENTS if args.small else args.events
    try:
        rates = {**max_rates(RESULTS, events), **parse_rates(args.rate)}
    except ValueError as exc:
        parser.error(str(exc))
    missing = [s for s in systems if s not in rates]
    if missing:
        # A throughput run that failed (or never ran) for a system leaves no max to take 50 % of.
        print(
            f"skipping {missing}: no max events/s (no correct `python -m bench.compare --events "
            f"{events}` result for them; give --rate system=events_per_s)",
            flush=True,
        )
        systems = [s for s in systems if s in rates]
        if not systems:
            return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    extra = {"prism": shlex.split(args.prism_args), "flink": shlex.split(args.flink_args)}
    quix_python = ensure_quix_venv() if "quix" in systems else None
    if "kstreams" in systems:
        from bench import kstreams_peer

        kstreams_peer.build()
    span_s = SimulationSpec().span_h * 3600 / SPEEDUP
    stack, pids = start_stack(args.home, systems)
    runs = []
    try:
        for system in systems:
            n = records_for(rates[system] * args.load, span_s, args.max_records)
            print(f"--- {system} ---", flush=True)
            run = measure(
                system,
                n,
                rates[system] * args.load,
                rates[system],
                stack,
                pids,
                args.seed,
                extra.get(system, []),
                quix_python,
            )
            runs.append(run)
            print(report.latency_table([dataclasses.asdict(run)]), flush=True)
    finally:
        if not args.keep_stack:
            local.down(home=args.home, say=print)
    rows = [dataclasses.asdict(r) for r in runs]
    print(report.latency_table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"latency-{args.label}" if args.label else "latency"
    text = json.dumps(
        {"events": events, "load": args.load, "systems": systems, "results": rows}, indent=1
    )
    out = RESULTS / f"{name}.json"
    out.write_text(text + "\n")
    (RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(text + "\n")
    page = report.write_latency(rows, RESULTS / f"{name}.html", RESULTS / f"{name}.png")
    print(f"results: {out}\nreport: {page}")
    return 0 if all(r.correct for r in runs) and not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
