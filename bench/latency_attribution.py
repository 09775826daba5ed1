"""Where the stateless path's latency goes, per runner and setting: Kafka append, read ->
pipeline output, write -> append.

    python -m bench.latency_attribution [--runners flink,prism] [--rate 150] [--seconds 60]
        [--variant NAME='--flag=v --flag2=v'] ... [--repeat 1] [--label NAME]

On ``bench.latency``'s private stack (Kafka, Beam's Java services, the Flink job server, market
data + Redis: the Beam pipeline enriches over HTTP from a warm cache), each (runner, variant,
repeat) is one streaming run of ``pipelines.property`` with its own fresh topics; variants of one
runner alternate (A B A B with ``--repeat 2``), so an A/B compares runs of one invocation.

Input: only LISTING_UPDATED events priced above the high-value threshold, so each event goes
down both stateless outputs (``enriched`` and ``high_value``). Warm-up: one event per
(zip, property type) the live events use, sent at once; the run waits until all came out
enriched (cache warm, job running end to end). Then ``--rate`` events/s for ``--seconds``, sent
by a spawned child process (not on the LOOPBACK worker's GIL) that records, per input record:

- ``send``: wall clock just before ``produce()`` (the input's CreateTime is its schedule, at or
  before the send; the payload's event time is the same);
- ``ack``: wall clock of the delivery callback (the child polls the client while it waits for the
  next send, so the callback runs within a few ms of the broker's acknowledgement) — the input's
  append time plus the ack's way back: an upper bound of the append.

Outputs: ``high_value`` on a CreateTime topic — Beam's Kafka writer leaves the record timestamp to
the producer, which stamps its ``send()`` call: the moment the pipeline handed the record to its
writer; the same child tails that topic and records when each record became readable (a
consumer with ``fetch.wait.max.ms`` 5: append + delivery to a consumer, an upper bound of the
append). ``enriched`` on a LogAppendTime topic (as ``bench.latency``): its append time.

Segments per event (ms; p50/p90/p99 by nearest rank):

- ``append``: ack - send (producer -> broker; upper bound);
- ``pipeline``: high_value write - ack (read, decode, validate, gate, filter, encode, hand to the
  writer; a lower bound by as much as ``append`` over-counts);
- ``write->append``: high_value readable - high_value write (the writer's producer, the broker and
  the tailing consumer's fetch: an upper bound);
- ``total high_value``: readable - send; ``total enriched``: append - send (the enrichment branch
  adds the market-data lookup from the Redis cache).

Each run's outputs are checked: every live event exactly once in both outputs (no loss, no
duplicate); a run that fails the check is reported as such. Results also in
``bench/results/latency-attribution[-LABEL].json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import os
import shlex
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.compare import (
    RESULTS,
    RUNNERS,
    ProcessMeter,
    create_topics,
    scaled_spec,
    system_topics,
    topic_flags,
)
from bench.latency import (
    DEFAULT_HOME,
    BeamRunning,
    delete_topics,
    latency_stats,
    read_timed,
    start_stack,
    wait_for_count,
)
from schemas.contract import EVENTS_TOPIC
from tools.simulate import (
    Simulation,
    generate,
    partition_for,
)
from transforms.codec import encode_record

LOG = logging.getLogger(__name__)

PARTITIONS = 4
SEGMENTS = ("append", "pipeline", "write->append", "total high_value", "total enriched")
WARMUP_TIMEOUT_S = 600.0
DRAIN_TIMEOUT_S = 180.0
INPUT_PRODUCER = {"linger.ms": 1, "enable.idempotence": True}
TAIL_CONSUMER = {"fetch.wait.max.ms": 5, "fetch.min.bytes": 1}


# ---- the input: high-value LISTING_UPDATED events ----------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One input record: where it goes, its bytes, and when it is due (ms since the epoch)."""

    event_id: str
    partition: int
    key: bytes
    value: bytes
    due_ms: int


def templates(threshold: int, seed: int = 7) -> list[dict[str, Any]]:
    """Valid PropertyEvent payloads of the simulator, made LISTING_UPDATED above ``threshold``."""
    sim: Simulation = generate(scaled_spec(10_000, seed=seed))
    out = []
    for r in sim.records:
        if r.topic == EVENTS_TOPIC and r.kind == "valid" and r.payload:
            p = dict(r.payload)
            p["event_type"] = "LISTING_UPDATED"
            p["price"] = max(int(p["price"]), threshold + 1)
            out.append(p)
    if not out:
        raise ValueError("the simulation produced no valid events")
    return out


def plan(
    payloads: Sequence[Mapping[str, Any]], count: int, start_ms: int, rate: float, prefix: str
) -> list[Planned]:
    """``count`` events cycling through ``payloads``, due every 1/``rate`` s from ``start_ms``
    (``rate`` 0: all due at ``start_ms``); event time = due time, event ids ``prefix-N``."""
    out = []
    for i in range(count):
        due = start_ms + (int(i * 1000 / rate) if rate > 0 else 0)
        p = {**payloads[i % len(payloads)], "event_id": f"{prefix}-{i:06d}", "event_time": due}
        key = str(p["property_id"]).encode()
        value = encode_record(p, "PropertyEvent", 1)
        out.append(Planned(p["event_id"], partition_for(key, PARTITIONS), key, value, due))
    return out


def warmup_payloads(payloads: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One payload per (zip code, property type): the market-data cache keys of the live events."""
    keys: dict[tuple[str, str], Mapping[str, Any]] = {}
    for p in payloads:
        keys.setdefault((p["zip_code"], p["property_type"]), p)
    return list(keys.values())


# ---- the child process: live producer with delivery times, tail of the written output ---------


def _produce_and_tail(
    records: list[Planned], bootstrap: str, topic: str, tail_topic: str, tail_s: float
) -> dict[str, Any]:
    """Sends ``records`` when due and records send/ack times; tails ``tail_topic`` meanwhile and
    for ``tail_s`` after the last ack (or until it holds every event), recording when each record
    became readable. Returns ``{"send": {id: ms}, "ack": {id: ms}, "seen": {id: [ms, ...]},
    "written": {id: ms}}``."""
    import threading

    from confluent_kafka import Consumer, Producer, TopicPartition

    from transforms.codec import decode_record

    send: dict[str, float] = {}
    ack: dict[str, float] = {}
    errors: list[str] = []
    seen: dict[str, list[float]] = {}
    written: dict[str, int] = {}
    expected = {r.event_id for r in records}
    stop = threading.Event()

    def tail() -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"attr-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                **TAIL_CONSUMER,
            }
        )
        consumer.assign([TopicPartition(tail_topic, p, 0) for p in range(PARTITIONS)])
        try:
            while not stop.is_set():
                for msg in consumer.consume(1_000, timeout=0.05):
                    now = time.time() * 1000
                    if msg.error():
                        continue
                    event_id = decode_record(msg.value(), "PropertyEvent")[1]["event_id"]
                    seen.setdefault(event_id, []).append(now)
                    written.setdefault(event_id, msg.timestamp()[1])
        finally:
            consumer.close()

    tailer = threading.Thread(target=tail, daemon=True)
    tailer.start()
    producer = Producer({"bootstrap.servers": bootstrap, **INPUT_PRODUCER})

    def delivered(event_id: str, err) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            ack[event_id] = time.time() * 1000

    for r in records:
        while True:
            wait_ms = r.due_ms - time.time() * 1000
            if wait_ms <= 0:
                break
            producer.poll(wait_ms / 1000)  # serves delivery callbacks while waiting
        send[r.event_id] = time.time() * 1000
        producer.produce(
            topic,
            value=r.value,
            key=r.key,
            partition=r.partition,
            timestamp=r.due_ms,
            on_delivery=lambda err, _msg, event_id=r.event_id: delivered(event_id, err),
        )
        producer.poll(0)
    left = producer.flush(60)
    if left or errors:
        stop.set()
        raise RuntimeError(f"input: {left} not delivered, errors {errors[:3]}")
    deadline = time.monotonic() + tail_s
    while time.monotonic() < deadline and not expected <= seen.keys():
        time.sleep(0.2)
    time.sleep(1.0)  # late duplicates, if any
    stop.set()
    tailer.join(timeout=10)
    return {"send": send, "ack": ack, "seen": seen, "written": written}


def produce_and_tail(
    records: list[Planned], bootstrap: str, topic: str, tail_topic: str, tail_s: float
) -> dict[str, Any]:
    """``_produce_and_tail`` in a spawned process (its own GIL)."""
    span_s = max(0.0, (records[-1].due_ms - time.time() * 1000) / 1000) if records else 0
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        job = pool.apply_async(_produce_and_tail, (records, bootstrap, topic, tail_topic, tail_s))
        return job.get(timeout=span_s + tail_s + 300)


# ---- one run ------------------------------------------------------------------------------------


@dataclass
class AttributionRun:
    """One streaming run's segments (ms) and checks."""

    runner: str
    variant: str
    flags: list[str]
    events: int
    rate_eps: float
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    exact: bool = False
    problems: list[str] = field(default_factory=list)
    warmup_s: float = 0.0
    cpu_s_per_1k: float = 0.0
    """CPU seconds of every stack process and this one (the LOOPBACK worker) during the live
    phase, per 1 000 live events."""
    effective: dict[str, Any] = field(default_factory=dict)


def segments_of(
    timing: Mapping[str, Any], enriched: Sequence[tuple[int, dict[str, Any]]]
) -> dict[str, list[float]]:
    """Per-segment latency samples (ms) of one run; see the module docstring."""
    send, ack, seen, written = timing["send"], timing["ack"], timing["seen"], timing["written"]
    out: dict[str, list[float]] = {name: [] for name in SEGMENTS}
    for event_id, sent in send.items():
        if event_id in ack:
            out["append"].append(ack[event_id] - sent)
        if event_id in written and event_id in ack:
            out["pipeline"].append(written[event_id] - ack[event_id])
        if event_id in seen and event_id in written:
            out["write->append"].append(min(seen[event_id]) - written[event_id])
        if event_id in seen:
            out["total high_value"].append(min(seen[event_id]) - sent)
    firsts: dict[str, int] = {}
    for append_ms, value in enriched:
        firsts.setdefault(value["event_id"], append_ms)
    for event_id, append_ms in firsts.items():
        if event_id in send:
            out["total enriched"].append(append_ms - send[event_id])
    return out


def check_exact(
    ids: set[str], high_value: Sequence[tuple[int, dict[str, Any]]], enriched: Sequence
) -> list[str]:
    """Problems: a live event missing from, or repeated in, either output."""
    problems = []
    for name, rows in (("high_value", high_value), ("enriched", enriched)):
        counts = Counter(v["event_id"] for _, v in rows if v["event_id"] in ids)
        missing = len(ids - counts.keys())
        repeated = sum(1 for n in counts.values() if n > 1)
        if missing or repeated:
            problems.append(f"{name}: {missing} missing, {repeated} repeated")
    return problems


def measure(
    runner: str,
    variant: str,
    flags: Sequence[str],
    stack,
    pids: Mapping[str, int],
    payloads: Sequence[Mapping[str, Any]],
    rate: float,
    seconds: float,
) -> AttributionRun:
    """One streaming run: fresh topics, start, warm up, live events, stop, read back."""
    bootstrap = stack.bootstrap_servers
    tag = time.strftime("%H%M%S") + uuid.uuid4().hex[:4]
    inputs = (f"attr-{tag}-events", f"attr-{tag}-views")
    topics = system_topics(runner, tag, inputs)
    create_topics(bootstrap, inputs)
    create_topics(bootstrap, [topics.high_value])  # CreateTime: the writer's send time
    others = [
        getattr(topics, f)
        for f in topics.__dataclass_fields__
        if f not in ("events", "views", "high_value")
    ]
    create_topics(bootstrap, others, append_time=True)
    warm = warmup_payloads(payloads)
    count = int(rate * seconds)
    argv = [f"--runner={RUNNERS[runner]}", *topic_flags(topics), *flags]
    run = AttributionRun(runner, variant, list(flags), count, rate)
    started = time.monotonic()
    running = BeamRunning(runner, argv, stack)
    try:
        now = int(time.time() * 1000)
        warm_records = plan(warm, len(warm), now - 1_000, 0, f"warm-{tag}")
        produce_and_tail(warm_records, bootstrap, inputs[0], topics.high_value, 0)
        wait_for_count(bootstrap, topics.enriched, len(warm_records), WARMUP_TIMEOUT_S)
        run.warmup_s = round(time.monotonic() - started, 1)
        run.effective = running.effective_options()
        live = plan(payloads, count, int(time.time() * 1000) + 2_000, rate, f"live-{tag}")
        print(
            f"{runner}/{variant}: warm after {run.warmup_s} s; {count} events at {rate}/s",
            flush=True,
        )
        with ProcessMeter({"python": os.getpid(), **pids}) as meter:
            timing = produce_and_tail(
                live, bootstrap, inputs[0], topics.high_value, DRAIN_TIMEOUT_S
            )
            wait_for_count(bootstrap, topics.enriched, len(warm_records) + count, 60)
        run.cpu_s_per_1k = round(sum(meter.cpu_by_process().values()) * 1000 / count, 2)
    finally:
        running.stop()
    ids = {r.event_id for r in live}
    high_value = read_timed(bootstrap, topics.high_value, "PropertyEvent", 300)
    enriched = read_timed(bootstrap, topics.enriched, "EnrichedPropertyEvent", 300)
    delete_topics(bootstrap, [*inputs, topics.high_value, *others])
    run.problems = check_exact(ids, high_value, enriched)
    run.exact = not run.problems
    samples = segments_of(timing, [(t, v) for t, v in enriched if v["event_id"] in ids])
    run.segments = {name: latency_stats(values) for name, values in samples.items()}
    return run


# ---- report -------------------------------------------------------------------------------------


def table(runs: Sequence[AttributionRun]) -> str:
    """One block per runner: a row per (variant, run, segment) with count and p50/p90/p99/max."""
    lines = []
    for runner in dict.fromkeys(r.runner for r in runs):
        lines.append(f"== {runner} ==")
        lines.append(
            f"{'variant':<22} {'segment':<17} {'count':>6} {'p50':>8} {'p90':>8} {'p99':>8} "
            f"{'max':>8}  exact"
        )
        for r in (r for r in runs if r.runner == runner):
            for name in SEGMENTS:
                s = r.segments.get(name, {"count": 0})
                cells = [f"{s.get(k, float('nan')):>8.0f}" for k in ("p50", "p90", "p99", "max")]
                lines.append(
                    f"{r.variant:<22} {name:<17} {s['count']:>6} {' '.join(cells)}  "
                    f"{'yes' if r.exact else 'NO: ' + '; '.join(r.problems)}"
                )
            lines.append("")
    return "\n".join(lines)


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME=FLAGS`` (flags shell-split) or ``NAME`` alone (no extra flags)."""
    name, _, flags = text.partition("=")
    if not name.strip():
        raise ValueError(f"--variant takes NAME[='--flag=v ...'], got {text!r}")
    return name.strip(), shlex.split(flags)


def main(argv: Sequence[str] | None = None) -> int:
    from runners import local

    parser = argparse.ArgumentParser(
        prog="python -m bench.latency_attribution",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runners", default="flink,prism", help="comma-separated: flink, prism")
    parser.add_argument("--rate", type=float, default=150.0, help="live events per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="live input duration")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME='--flag=v ...' extra pipeline flags (repeatable; default: one, 'preset')",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant, alternated")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="the bench stack's home")
    parser.add_argument("--keep_stack", action="store_true", help="leave the bench stack up")
    parser.add_argument("--label", default="", help="results in latency-attribution[-LABEL].json")
    args = parser.parse_args(argv)
    runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    if not runners or set(runners) - {"flink", "prism"}:
        parser.error(f"--runners from flink, prism; got {runners}")
    if args.rate <= 0 or args.seconds <= 0 or args.repeat < 1:
        parser.error("--rate and --seconds must be > 0, --repeat >= 1")
    try:
        variants = [parse_variant(v) for v in args.variant] or [("preset", [])]
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    payloads = templates(threshold=500_000)
    stack, pids = start_stack(args.home, runners)
    runs: list[AttributionRun] = []
    try:
        for runner in runners:
            for _ in range(args.repeat):
                for name, flags in variants:
                    run = measure(
                        runner, name, flags, stack, pids, payloads, args.rate, args.seconds
                    )
                    runs.append(run)
                    print(table([run]), flush=True)
                    print(f"  CPU s per 1000 events: {run.cpu_s_per_1k}", flush=True)
                    if run.effective:
                        print(f"  effective: {run.effective}", flush=True)
    finally:
        if not args.keep_stack:
            local.down(home=args.home, say=print)
    print(table(runs))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"latency-attribution-{args.label}" if args.label else "latency-attribution"
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps([dataclasses.asdict(r) for r in runs], indent=1) + "\n")
    print(f"results: {out}")
    return 0 if all(r.exact for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
