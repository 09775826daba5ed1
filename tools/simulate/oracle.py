"""The oracle: what the pipeline must output for a planned log, computed from the records in log
order by the contract's rules, independently of the pipeline's transforms (it is the
specification they are checked against)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.contract import EVENTS_TOPIC
from tools.simulate.spec import OVERSIZE, PlannedRecord, SimulationSpec, window_start


@dataclass
class Oracle:
    """What the pipeline must output for one simulation (see the contract's output table)."""

    counts_by_zip: dict[str, int] = field(default_factory=dict)
    hourly_views: dict[str, int] = field(default_factory=dict)  # "property_id|window_start_ms"
    alert_ids: list[str] = field(default_factory=list)
    high_value_event_ids: list[str] = field(default_factory=list)
    listing_updated_event_ids: list[str] = field(default_factory=list)
    dead_letters: int = 0
    dead_letters_by_topic: dict[str, int] = field(default_factory=dict)
    late: int = 0
    late_by_topic: dict[str, int] = field(default_factory=dict)
    records_by_topic: dict[str, int] = field(default_factory=dict)
    valid_events: int = 0
    valid_views: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Oracle:
        return cls(**json.loads(text))


def compute_oracle(records: Sequence[PlannedRecord], spec: SimulationSpec) -> Oracle:
    """The expected outputs, from the records in log order (the contract's rules, stated plainly).

    - Poison records go to the DLQ and do not move stream time.
    - An oversize event (valid, its enriched record too large to write) is counted by zip and is
      one dead letter instead of an enriched record.
    - A valid record is late when its partition's stream time (max event time of the valid
      records before it in that partition) is at or past the end of its ``gate_window_s`` window
      plus the allowed lateness. Late records are counted nowhere else.
    - Everything else is counted: by zip (events), per property and hour (views), per user and
      fraud window (views; more than the threshold is one alert).
    """
    oracle = Oracle()
    gate_ms, lateness_ms = spec.gate_window_s * 1000, spec.allowed_lateness_s * 1000
    stream_time: dict[tuple[str, int], int] = {}
    zips: Counter[str] = Counter()
    hourly: Counter[tuple[str, int]] = Counter()
    fraud: Counter[tuple[str, int]] = Counter()
    dlq: Counter[str] = Counter()
    late: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for r in records:
        totals[r.topic] += 1
        if r.kind.startswith("poison:"):
            dlq[r.topic] += 1
            continue
        assert r.payload is not None
        et = r.payload["event_time"]
        where = (r.topic, r.partition)
        seen = stream_time.get(where)
        if seen is not None and seen >= window_start(et, gate_ms) + gate_ms + lateness_ms:
            late[r.topic] += 1
            continue
        stream_time[where] = et if seen is None else max(seen, et)
        if r.kind == OVERSIZE:
            # Counted by zip; its enriched record is too large to write: one dead letter instead
            # (the generator keeps it below the high-value threshold: no second output).
            oracle.valid_events += 1
            zips[r.payload["zip_code"]] += 1
            dlq[r.topic] += 1
        elif r.topic == EVENTS_TOPIC:
            oracle.valid_events += 1
            zips[r.payload["zip_code"]] += 1
            if r.payload["price"] > spec.high_value_threshold:
                oracle.high_value_event_ids.append(r.payload["event_id"])
            if r.payload["event_type"] == "LISTING_UPDATED":
                oracle.listing_updated_event_ids.append(r.payload["event_id"])
        else:
            oracle.valid_views += 1
            hourly[(r.payload["property_id"], window_start(et, spec.hourly_window_s * 1000))] += 1
            fraud[(r.payload["user_id"], window_start(et, spec.fraud_window_s * 1000))] += 1
    oracle.counts_by_zip = dict(sorted(zips.items()))
    oracle.hourly_views = {f"{p}|{w}": n for (p, w), n in sorted(hourly.items())}
    oracle.alert_ids = sorted(f"{u}:{w}" for (u, w), n in fraud.items() if n > spec.fraud_threshold)
    oracle.dead_letters = sum(dlq.values())
    oracle.dead_letters_by_topic = dict(dlq)
    oracle.late = sum(late.values())
    oracle.late_by_topic = dict(late)
    oracle.records_by_topic = dict(totals)
    return oracle
