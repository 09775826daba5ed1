"""Planning the two input topics' records: listings, views, bots, out-of-order, too-late and
poison records; ``generate`` is a pure function of the spec (and clock), ``compress_time`` makes
the same log fit a live run of minutes."""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from schemas.contract import EVENT_TYPES, EVENTS_TOPIC, PROPERTY_TYPES, VIEWS_TOPIC
from tools.simulate.oracle import Oracle, compute_oracle
from tools.simulate.records import (
    encode_event_incompatible,
    encode_event_v2,
    event_payload,
    oversize_event,
    poison_event,
    poison_view,
    view_payload,
)
from tools.simulate.spec import (
    EVENT_TYPE_WEIGHTS,
    HOUR_MS,
    INCOMPATIBLE,
    MEDIAN_PRICE,
    NULL_RECORD,
    POISON_EVENT_CLASSES,
    POISON_VIEW_CLASSES,
    PROPERTY_TYPE_WEIGHTS,
    PlannedRecord,
    SimulationSpec,
    partition_for,
    scaled_spec,
    window_start,
)
from transforms.codec import encode_record


@dataclass(frozen=True)
class Simulation:
    records: list[PlannedRecord]
    oracle: Oracle
    # How to plan this very log again (seed, clock and every non-default spec field): a test that
    # fails on a log built from the wall clock says it, so the failure can be replayed.
    replay: str = ""


def replay_command(spec: SimulationSpec, end_ms: int, now_ms: int) -> str:
    """The simulator command that plans the same records and oracle as ``generate(spec, now_ms)``
    (``--dry_run`` writes the oracle only; drop it to produce the log)."""
    default = SimulationSpec()
    flags = [
        f"--{f.name}={getattr(spec, f.name)}"
        for f in dataclasses.fields(SimulationSpec)
        if f.name != "end_ms" and getattr(spec, f.name) != getattr(default, f.name)
    ]
    return " ".join(
        [
            "python -m tools.simulate --dry_run",
            *flags,
            f"--end_ms={end_ms}",
            f"--now_ms={now_ms}",
        ]
    )


def zip_codes(count: int = 200) -> list[str]:
    """The zip codes the simulator draws from: the market-data service's dataset when present."""
    from runners.marketdata.dataset import zip_codes as market_zip_codes

    return list(market_zip_codes(count))


def unknown_zip_codes(count: int) -> list[str]:
    """``count`` zip codes the market-data service does not know: "00000" upwards, below the
    dataset's first zip."""
    from runners.marketdata.dataset import FIRST_ZIP

    if not 1 <= count < FIRST_ZIP:
        raise ValueError(f"unknown_zip_count must be between 1 and {FIRST_ZIP - 1}, got {count}")
    return [f"{n:05d}" for n in range(count)]


def generate(spec: SimulationSpec, now_ms: int | None = None) -> Simulation:
    """Plan every record and compute the oracle. Pure: same spec and clock, same output."""
    rng = random.Random(spec.seed)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    end_ms = spec.end_ms if spec.end_ms is not None else now_ms
    start_ms = window_start(end_ms - spec.span_h * HOUR_MS, HOUR_MS)
    span_ms = end_ms - start_ms
    uid = random.Random(spec.seed + 1)

    def new_id() -> str:
        return str(uuid.UUID(int=uid.getrandbits(128), version=4))

    zips = zip_codes()
    unknown_zips = unknown_zip_codes(spec.unknown_zip_count)
    properties = []
    for i in range(spec.properties):
        ptype = rng.choices(PROPERTY_TYPES, PROPERTY_TYPE_WEIGHTS)[0]
        zip_code = (
            rng.choice(unknown_zips) if rng.random() < spec.unknown_zip_share else rng.choice(zips)
        )
        price = int(MEDIAN_PRICE[ptype] * rng.lognormvariate(0, 0.55))
        properties.append(
            {"property_id": f"P{i:06d}", "zip_code": zip_code, "type": ptype, "price": price}
        )

    # (send_order_key, record) pairs; the send order is event time plus a jitter, so records are
    # out of order by up to jitter_s — within the allowed lateness, hence on time.
    planned: list[tuple[float, PlannedRecord]] = []

    def add(
        payload: dict[str, Any],
        topic: str,
        key: str,
        schema: str,
        schema_id: int,
        kind: str = "valid",
    ) -> None:
        send_at = payload["event_time"] + rng.uniform(0, spec.jitter_s * 1000)
        value = encode_record(payload, schema, schema_id)
        planned.append(
            (
                send_at,
                PlannedRecord(
                    topic=topic,
                    partition=partition_for(key.encode(), spec.partitions),
                    key=key.encode(),
                    value=value,
                    timestamp_ms=min(payload["event_time"], now_ms),
                    kind=kind,
                    payload=payload,
                ),
            )
        )

    for _ in range(spec.events):
        prop = rng.choice(properties)
        etype = rng.choices(EVENT_TYPES, EVENT_TYPE_WEIGHTS)[0]
        if etype == "PRICE_CHANGED":
            prop["price"] = max(1_000, int(prop["price"] * rng.uniform(0.9, 1.08)))
        add(
            event_payload(prop, etype, start_ms + rng.randrange(span_ms), new_id(), rng),
            EVENTS_TOPIC,
            prop["property_id"],
            "PropertyEvent",
            1,
        )

    # Popular listings: view targets follow a Zipf-like law.
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(spec.properties)]
    users = [f"U{i:05d}" for i in range(spec.users)]
    for _ in range(spec.views):
        prop = rng.choices(properties, weights)[0]
        user = rng.choice(users)
        add(
            view_payload(
                user, prop["property_id"], start_ms + rng.randrange(span_ms), new_id(), rng
            ),
            VIEWS_TOPIC,
            user,
            "PropertyView",
            2,
        )

    fraud_ms = spec.fraud_window_s * 1000
    for b in range(spec.bots):
        bot = f"BOT{b:03d}"
        # A burst inside one fraud window, placed away from the span's edges.
        wstart = window_start(start_ms + HOUR_MS + rng.randrange(span_ms - 2 * HOUR_MS), fraud_ms)
        for _ in range(spec.bot_views):
            prop = rng.choices(properties, weights)[0]
            add(
                view_payload(
                    bot, prop["property_id"], wstart + rng.randrange(fraud_ms), new_id(), rng
                ),
                VIEWS_TOPIC,
                bot,
                "PropertyView",
                2,
            )

    planned.sort(key=lambda pair: pair[0])
    records = [r for _, r in planned]

    # Too-late records: event time in the first hour, appended at the end of the log, where their
    # partition's stream time is hours past their window's end plus the allowed lateness.
    for i in range(spec.too_late):
        if i % 4 == 3:
            prop = rng.choice(properties)
            payload = event_payload(
                prop, "LISTING_UPDATED", start_ms + rng.randrange(HOUR_MS // 2), new_id(), rng
            )
            topic, key, schema, sid = EVENTS_TOPIC, prop["property_id"], "PropertyEvent", 1
        else:
            user = rng.choice(users)
            payload = view_payload(
                user,
                rng.choice(properties)["property_id"],
                start_ms + rng.randrange(HOUR_MS // 2),
                new_id(),
                rng,
            )
            topic, key, schema, sid = VIEWS_TOPIC, user, "PropertyView", 2
        records.append(
            PlannedRecord(
                topic,
                partition_for(key.encode(), spec.partitions),
                key.encode(),
                encode_record(payload, schema, sid),
                payload["event_time"],
                "too_late",
                payload,
            )
        )

    # Poison records, scattered through the log.
    for cls in POISON_EVENT_CLASSES:
        for _ in range(spec.poison_per_class):
            records.insert(
                rng.randrange(len(records) + 1),
                poison_event(
                    cls,
                    rng.choice(properties),
                    start_ms + rng.randrange(span_ms),
                    now_ms,
                    new_id(),
                    rng,
                    spec,
                ),
            )
    for cls in POISON_VIEW_CLASSES:
        for _ in range(spec.poison_per_class):
            user = rng.choice(users)
            records.insert(
                rng.randrange(len(records) + 1),
                poison_view(
                    cls,
                    user,
                    rng.choice(properties)["property_id"],
                    start_ms + rng.randrange(span_ms),
                    new_id(),
                    rng,
                    spec,
                ),
            )
    if spec.poison_burst or spec.oversize or spec.null_keys:
        records = _bad_input_at_scale(records, properties, users, now_ms, spec)
    if spec.v2_share or spec.incompatible:
        records = _schema_versions(records, properties, spec)
    # A clock-skewed record carries its send time as timestamp: it belongs at the end of the log
    # (where the simulated span ends, "now"), so keep those last.
    records.sort(key=lambda r: r.kind == "poison:future_event_time")
    return Simulation(
        records=records,
        oracle=compute_oracle(records, spec),
        replay=replay_command(spec, end_ms, now_ms),
    )


def compress_time(
    sim: Simulation, spec: SimulationSpec, speedup: int, origin_ms: int
) -> Simulation:
    """The same log with its time compressed ``speedup`` times and moved to start at ``origin_ms``,
    for live runs that must finish in minutes (``speedup=120``: the 1 h windows last 30 s).

    ``sim`` must come from ``generate(spec)`` with ``spec.end_ms`` set. Every event time and record
    timestamp ``t`` becomes ``origin_ms + (t - span_start) // speedup``; valid and too-late records
    are re-encoded with their new event time; poison records keep their bytes (they go to the
    dead-letter output whatever their time; the clock-skewed one stays hours ahead), and their
    timestamps are capped at the latest timestamp before them in the log: a live producer stamps a
    record with its event time capped at the send time, and a poison record's random time must not
    stall a producer that follows the timestamps (``produce(follow_timestamps=True)``). The pipeline
    must then run with the windows, lateness and fraud window divided by ``speedup``: the returned
    oracle is ``compute_oracle`` of the new log with ``scaled_spec(spec, speedup)``.
    """
    if spec.end_ms is None:
        raise ValueError("compress_time needs spec.end_ms (the span generate() used)")
    scaled = scaled_spec(spec, speedup)
    span_start = window_start(spec.end_ms - spec.span_h * HOUR_MS, HOUR_MS)

    def moved(t: int) -> int:
        return origin_ms + (t - span_start) // speedup

    records = []
    clock_ms = origin_ms
    for r in sim.records:
        if r.payload is None or r.kind.startswith("poison:"):
            capped = min(moved(r.timestamp_ms), clock_ms)
            records.append(dataclasses.replace(r, timestamp_ms=capped))
            continue
        clock_ms = max(clock_ms, moved(r.timestamp_ms))
        payload = {**r.payload, "event_time": moved(r.payload["event_time"])}
        schema, schema_id = ("PropertyEvent", 1) if r.topic == EVENTS_TOPIC else ("PropertyView", 2)
        records.append(
            dataclasses.replace(
                r,
                value=encode_record(payload, schema, schema_id),
                timestamp_ms=moved(r.timestamp_ms),
                payload=payload,
            )
        )
    return Simulation(
        records=records,
        oracle=compute_oracle(records, scaled),
        replay=f"{sim.replay}, then compress_time(speedup={speedup}, origin_ms={origin_ms})",
    )


def _bad_input_at_scale(
    records: list[PlannedRecord],
    properties: list[dict[str, Any]],
    users: list[str],
    now_ms: int,
    spec: SimulationSpec,
) -> list[PlannedRecord]:
    """``records`` with the spec's null keys, oversize events and poison burst (its own random
    stream, so the rest of the log is unchanged). Oversize events and the burst take the event
    time of the record they follow: on time, like their neighbours."""
    rng = random.Random(spec.seed + 2)
    uid = random.Random(spec.seed + 3)

    def new_id() -> str:
        return str(uuid.UUID(int=uid.getrandbits(128), version=4))

    records = list(records)
    valid = [i for i, r in enumerate(records) if r.kind == "valid"]
    for i in rng.sample(valid, min(spec.null_keys, len(valid))):
        records[i] = dataclasses.replace(records[i], key=None)

    def time_at(i: int) -> int:
        """The event time of the nearest record with a payload at or before index ``i``."""
        for r in reversed(records[: i + 1]):
            if r.payload is not None:
                return r.payload["event_time"]
        return records[0].timestamp_ms

    for _ in range(spec.oversize):
        at = rng.randrange(1, len(records))
        prop = rng.choice(properties)
        payload = event_payload(prop, "LISTING_UPDATED", time_at(at - 1), "", rng)
        payload["price"] = min(payload["price"], spec.high_value_threshold)
        records.insert(at, oversize_event(payload, new_id(), spec, now_ms))

    classes = [("event", c) for c in (*POISON_EVENT_CLASSES, NULL_RECORD)] + [
        ("view", c) for c in POISON_VIEW_CLASSES
    ]
    middle = len(records) // 2
    event_time = time_at(middle - 1)
    burst = []
    for n in range(spec.poison_burst):
        topic, cls = classes[n % len(classes)]
        if cls == NULL_RECORD:
            partition = rng.randrange(spec.partitions)
            burst.append(
                PlannedRecord(EVENTS_TOPIC, partition, None, None, event_time, f"poison:{cls}")
            )
        elif topic == "event":
            burst.append(
                poison_event(cls, rng.choice(properties), event_time, now_ms, new_id(), rng, spec)
            )
        else:
            prop_id = rng.choice(properties)["property_id"]
            burst.append(
                poison_view(cls, rng.choice(users), prop_id, event_time, new_id(), rng, spec)
            )
    return records[:middle] + burst + records[middle:]


def _schema_versions(
    records: list[PlannedRecord], properties: list[dict[str, Any]], spec: SimulationSpec
) -> list[PlannedRecord]:
    """``records`` with ``v2_share`` of the valid events re-written with the compatible v2 writer
    schema (same payload as read by the v1 reader, so the oracle is unchanged) and
    ``incompatible`` events with the incompatible writer schema inserted at random places, each
    with the timestamp of the record before it (its own random stream: the rest of the log is
    unchanged)."""
    rng = random.Random(spec.seed + 4)
    records = list(records)
    if spec.v2_share:
        for i, r in enumerate(records):
            if r.kind == "valid" and r.topic == EVENTS_TOPIC and rng.random() < spec.v2_share:
                assert r.payload is not None
                value = encode_event_v2(r.payload, spec.v2_schema_id)
                records[i] = dataclasses.replace(r, value=value)
    uid = random.Random(spec.seed + 5)
    for _ in range(spec.incompatible):
        at = rng.randrange(1, len(records))
        before = next((r for r in reversed(records[:at]) if r.payload is not None), records[0])
        event_time = before.payload["event_time"] if before.payload else before.timestamp_ms
        prop = rng.choice(properties)
        event_id = str(uuid.UUID(int=uid.getrandbits(128), version=4))
        payload = event_payload(prop, "LISTING_UPDATED", event_time, event_id, rng)
        key = prop["property_id"].encode()
        value = encode_event_incompatible(payload, spec.incompatible_schema_id)
        partition = partition_for(key, spec.partitions)
        records.insert(
            at,
            PlannedRecord(EVENTS_TOPIC, partition, key, value, before.timestamp_ms, INCOMPATIBLE),
        )
    return records
