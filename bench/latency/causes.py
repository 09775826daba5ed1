"""Which input record caused which output record, per path, and the latency of each output
(its append time minus its cause's input time)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.contract import EVENTS_TOPIC
from tools.simulate import (
    PlannedRecord,
    SimulationSpec,
)


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
