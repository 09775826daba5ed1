"""One attribution run (runner, variant, repeat): topics, start, warm-up, live input, drain,
and each record's latency split into segments; the exactness check of its outputs."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.kafka_io import create_topics
from bench.latency import (
    BeamRunning,
    delete_topics,
    latency_stats,
    read_timed,
    wait_for_count,
)
from bench.latency_attribution.child import produce_and_tail
from bench.latency_attribution.inputs import plan, warmup_payloads
from bench.meter import ProcessMeter
from bench.workload import RUNNERS, system_topics, topic_flags

SEGMENTS = ("append", "pipeline", "write->append", "total high_value", "total enriched")


WARMUP_TIMEOUT_S = 600.0


DRAIN_TIMEOUT_S = 180.0


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
