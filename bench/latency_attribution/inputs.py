"""The attribution run's input: high-value LISTING_UPDATED events (each goes down both
stateless outputs), planned at the rate, and the warm-up events that fill the cache first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.workload import PARTITIONS, scaled_spec
from schemas.contract import EVENTS_TOPIC
from tools.simulate import (
    Simulation,
    generate,
    partition_for,
)
from transforms.codec import encode_record


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
