"""What a latency run sends and at what rate: the warm-up records, the live log's origin, the
log's end offsets, and the systems' maximum rates (from the throughput results or ``--rate``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.latency.config import MIN_RECORDS, WARMUP_VIEWS
from bench.workload import (
    SYSTEMS,
)
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate import (
    HOUR_MS,
    PlannedRecord,
    SimulationSpec,
    partition_for,
)
from transforms.codec import encode_record


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
            if eps > 0 and row.get("correct") and when > found.get(row["system"], (-1, 0))[0]:
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


def records_for(rate: float, span_s: float, max_records: int) -> int:
    """Records of one system's live log: ``rate`` for ``span_s`` seconds, capped at
    ``max_records`` (the load is then lower), never below ``MIN_RECORDS``."""
    return max(MIN_RECORDS, min(max_records, int(rate * span_s)))
