"""A seeded simulator of the two input topics, and the oracle of what the pipeline must output.

``python -m pipelines.simulate`` writes property events and views to Kafka in the wire format
(Confluent framing, schema ids 1 and 2 as the contract says), with:

- listings, updates, price changes and removals over ``span_h`` hours of event time, prices by
  property type, zip codes from the market-data service's dataset (plus a few it does not know);
- views by ordinary users with popular listings (Zipf), and bot users that cross the fraud
  threshold inside one 10-minute window;
- out-of-order records (send order jittered by up to ``jitter_s`` behind event time, within the
  allowed lateness), too-late records (event time in the first hour, sent at the end: late in the
  log by the contract's definition), and poison records of every malformed class.

Every record is assigned its partition here (``partition_for``), so the simulator knows each
partition's offset order and can compute the contract's "late in the log" exactly. ``generate`` is a
pure function of the spec: the records and the ``Oracle`` (the expected outputs) come out of the
same call, and ``produce`` sends them. The oracle is written independently of the pipeline's
transforms on purpose: it is the specification they are checked against.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import struct
import sys
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.delivery import DeliveryReport
from schemas.contract import EVENT_TYPES, EVENTS_TOPIC, PROPERTY_TYPES, VIEWS_TOPIC
from transforms.codec import encode_record

LOG = logging.getLogger(__name__)

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS

# Share of each event type and property type (symbols from the contract's schema, in its order).
_EVENT_TYPE_SHARE = {
    "LISTING_CREATED": 0.15,
    "LISTING_UPDATED": 0.45,
    "PRICE_CHANGED": 0.30,
    "LISTING_REMOVED": 0.10,
}
_PROPERTY_TYPE_SHARE = {
    "SINGLE_FAMILY": 0.45,
    "CONDO": 0.25,
    "TOWNHOUSE": 0.15,
    "MULTI_FAMILY": 0.10,
    "LAND": 0.05,
}
EVENT_TYPE_WEIGHTS = tuple(_EVENT_TYPE_SHARE[t] for t in EVENT_TYPES)
PROPERTY_TYPE_WEIGHTS = tuple(_PROPERTY_TYPE_SHARE[t] for t in PROPERTY_TYPES)
# Median asking price per property type (USD); prices are log-normal around these.
MEDIAN_PRICE = {
    "SINGLE_FAMILY": 420_000,
    "CONDO": 310_000,
    "TOWNHOUSE": 360_000,
    "MULTI_FAMILY": 650_000,
    "LAND": 150_000,
}
CHANNELS = ("WEB", "MOBILE", "API")

POISON_EVENT_CLASSES = (
    "null_value",
    "short",
    "bad_magic",
    "unknown_schema_id",
    "corrupt_body",
    "wrong_schema",
    "invalid_zip",
    "invalid_price",
    "empty_id",
    "future_event_time",
)
POISON_VIEW_CLASSES = ("null_value", "corrupt_body", "empty_user_id")


@dataclass(frozen=True)
class SimulationSpec:
    """What to simulate. Defaults make a ~1-minute local demo; tests use smaller numbers."""

    seed: int = 7
    properties: int = 400
    users: int = 300
    events: int = 4_000
    views: int = 16_000
    bots: int = 3
    bot_views: int = 60
    poison_per_class: int = 2
    too_late: int = 20
    partitions: int = 4
    span_h: int = 3
    jitter_s: int = 240
    unknown_zip_share: float = 0.02
    # Pipeline semantics the oracle must mirror (defaults of pipelines.options).
    gate_window_s: int = 3600
    allowed_lateness_s: int = 600
    fraud_window_s: int = 600
    fraud_threshold: int = 50
    high_value_threshold: int = 500_000
    hourly_window_s: int = 3600
    # Event time of the end of the simulated span; None = now (so the span ends "now" and a
    # capped clock-skewed record's timestamp sits at the end of its partition's log).
    end_ms: int | None = None

    def __post_init__(self) -> None:
        for name in ("properties", "users", "events", "views", "partitions", "span_h"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SimulationSpec.{name} must be > 0, got {getattr(self, name)}")
        if self.jitter_s * 1000 >= self.allowed_lateness_s * 1000:
            raise ValueError(
                "jitter_s must stay below allowed_lateness_s, or ordinary records turn late"
            )


@dataclass(frozen=True)
class PlannedRecord:
    """One record to produce. ``kind`` is ``valid``, ``too_late`` or ``poison:<class>``."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    kind: str
    payload: dict[str, Any] | None = None


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
            "python -m pipelines.simulate --dry_run",
            *flags,
            f"--end_ms={end_ms}",
            f"--now_ms={now_ms}",
        ]
    )


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of a key (CRC32 modulo partitions): deterministic, so the oracle knows
    the log."""
    return zlib.crc32(key) % partitions


def window_start(ts_ms: int, size_ms: int) -> int:
    return ts_ms - ts_ms % size_ms


def zip_codes(count: int = 200) -> list[str]:
    """The zip codes the simulator draws from: the market-data service's dataset when present."""
    from runners.marketdata.dataset import zip_codes as market_zip_codes

    return list(market_zip_codes(count))


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
    unknown_zips = ["00000", "00001"]
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
            _event(prop, etype, start_ms + rng.randrange(span_ms), new_id(), rng),
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
            _view(user, prop["property_id"], start_ms + rng.randrange(span_ms), new_id(), rng),
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
                _view(bot, prop["property_id"], wstart + rng.randrange(fraud_ms), new_id(), rng),
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
            payload = _event(
                prop, "LISTING_UPDATED", start_ms + rng.randrange(HOUR_MS // 2), new_id(), rng
            )
            topic, key, schema, sid = EVENTS_TOPIC, prop["property_id"], "PropertyEvent", 1
        else:
            user = rng.choice(users)
            payload = _view(
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
                _poison_event(
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
                _poison_view(
                    cls,
                    user,
                    rng.choice(properties)["property_id"],
                    start_ms + rng.randrange(span_ms),
                    new_id(),
                    rng,
                    spec,
                ),
            )
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


def scaled_spec(spec: SimulationSpec, speedup: int) -> SimulationSpec:
    """``spec`` with its time parameters (windows, lateness, jitter) divided by ``speedup``; each
    must divide exactly, in whole seconds, as the pipeline's options take them."""
    if speedup < 1:
        raise ValueError(f"speedup must be >= 1, got {speedup}")
    names = ("gate_window_s", "allowed_lateness_s", "fraud_window_s", "hourly_window_s", "jitter_s")
    uneven = [n for n in names if getattr(spec, n) % speedup]
    if uneven:
        raise ValueError(f"speedup {speedup} does not divide {uneven} of the spec exactly")
    return dataclasses.replace(spec, **{n: getattr(spec, n) // speedup for n in names})


def _encode_event(payload: dict[str, Any]) -> bytes:
    return encode_record(payload, "PropertyEvent", 1)


def _encode_view(payload: dict[str, Any]) -> bytes:
    return encode_record(payload, "PropertyView", 2)


def _event(
    prop: dict[str, Any], etype: str, event_time: int, event_id: str, rng: random.Random
) -> dict[str, Any]:
    land = prop["type"] == "LAND"
    return {
        "event_id": event_id,
        "event_type": etype,
        "property_id": prop["property_id"],
        "zip_code": prop["zip_code"],
        "property_type": prop["type"],
        "price": prop["price"],
        "bedrooms": None if land else rng.randint(1, 6),
        "bathrooms": None if land else float(rng.choice((1, 1.5, 2, 2.5, 3, 4))),
        "square_feet": None if land else rng.randint(450, 5200),
        "event_time": event_time,
    }


def _view(
    user: str, property_id: str, event_time: int, view_id: str, rng: random.Random
) -> dict[str, Any]:
    return {
        "view_id": view_id,
        "user_id": user,
        "property_id": property_id,
        "channel": rng.choice(CHANNELS),
        "event_time": event_time,
    }


def _poison_event(
    cls: str,
    prop: dict[str, Any],
    event_time: int,
    now_ms: int,
    event_id: str,
    rng: random.Random,
    spec: SimulationSpec,
) -> PlannedRecord:
    payload = _event(prop, "PRICE_CHANGED", event_time, event_id, rng)
    ts = event_time
    if cls == "null_value":
        value = None
    elif cls == "short":
        value = b"\x00\x00\x01"
    elif cls == "bad_magic":
        value = b"\x07" + _encode_event(payload)[1:]
    elif cls == "unknown_schema_id":
        value = b"\x00" + struct.pack(">I", 9_999) + _encode_event(payload)[5:]
    elif cls == "corrupt_body":
        value = _encode_event(payload)[:9] + b"\xff\xff\xff\xff\xff"
    elif cls == "wrong_schema":
        value = _encode_view(_view("U1", prop["property_id"], event_time, event_id, rng))
    elif cls == "invalid_zip":
        value = _encode_event({**payload, "zip_code": "9A1"})
    elif cls == "invalid_price":
        value = _encode_event({**payload, "price": rng.choice((0, -5, 2_000_000_000))})
    elif cls == "empty_id":
        value = _encode_event({**payload, "event_id": ""})
    elif cls == "future_event_time":
        future = now_ms + 3 * HOUR_MS
        value = _encode_event({**payload, "event_time": future})
        ts = now_ms  # the contract: the record timestamp is capped at the send time
    else:
        raise ValueError(f"unknown poison class {cls}")
    key = prop["property_id"].encode()
    return PlannedRecord(
        EVENTS_TOPIC, partition_for(key, spec.partitions), key, value, ts, f"poison:{cls}"
    )


def _poison_view(
    cls: str,
    user: str,
    property_id: str,
    event_time: int,
    view_id: str,
    rng: random.Random,
    spec: SimulationSpec,
) -> PlannedRecord:
    payload = _view(user, property_id, event_time, view_id, rng)
    if cls == "null_value":
        value = None
    elif cls == "corrupt_body":
        value = _encode_view(payload)[:7]
    elif cls == "empty_user_id":
        value = _encode_view({**payload, "user_id": ""})
    else:
        raise ValueError(f"unknown poison class {cls}")
    key = user.encode()
    return PlannedRecord(
        VIEWS_TOPIC, partition_for(key, spec.partitions), key, value, event_time, f"poison:{cls}"
    )


def compute_oracle(records: Sequence[PlannedRecord], spec: SimulationSpec) -> Oracle:
    """The expected outputs, from the records in log order (the contract's rules, stated plainly).

    - Poison records go to the DLQ and do not move stream time.
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
        if r.topic == EVENTS_TOPIC:
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


def produce(
    records: Iterable[PlannedRecord],
    bootstrap_servers: str,
    *,
    topics: dict[str, str] | None = None,
    rate_per_s: float = 0.0,
    follow_timestamps: bool = False,
    producer_config: dict[str, str] | None = None,
    progress: bool = True,
    timeout_s: float = 120.0,
    sent_ms: list[float] | None = None,
) -> int:
    """Send the records in order, to their planned partitions, with their planned timestamps.

    ``topics`` maps the default topic names to the ones to write (tests use unique topics).
    ``rate_per_s`` > 0 paces the producer; 0 sends as fast as possible. ``follow_timestamps``
    paces it by the records' own timestamps instead: a record is sent once the wall clock has
    reached its timestamp and every earlier record's (a live log whose CreateTime is never after
    its send time, as the contract's producers write it). The producer is idempotent,
    so each partition's log holds the planned order. ``sent_ms``, when given, receives each
    record's wall-clock send time (ms, taken just before it is handed to the client; the latency
    benchmark's input time). Returns the number of records delivered.
    """
    from confluent_kafka import Producer
    from tqdm import tqdm

    records = list(records)
    topics = topics or {}
    conf = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "linger.ms": 20,
        "compression.type": "lz4",
        **(producer_config or {}),
    }
    producer = Producer(conf)
    report = DeliveryReport()

    started = time.monotonic()
    bar = tqdm(
        total=len(records), unit="rec", desc="produce", disable=not progress, file=sys.stderr
    )
    send_after_ms = 0
    for i, r in enumerate(records):
        if follow_timestamps:
            send_after_ms = max(send_after_ms, r.timestamp_ms)
            wait_s = send_after_ms / 1000 - time.time()
            if wait_s > 0:
                producer.poll(0)
                time.sleep(wait_s)
        if sent_ms is not None:
            sent_ms.append(time.time() * 1000)
        while True:
            try:
                producer.produce(
                    topics.get(r.topic, r.topic),
                    value=r.value,
                    key=r.key,
                    partition=r.partition,
                    timestamp=r.timestamp_ms,
                    on_delivery=report,
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        bar.update(1)
        if rate_per_s > 0:
            ahead = (i + 1) / rate_per_s - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    remaining = producer.flush(timeout_s)
    bar.close()
    if remaining or report.errors:
        raise RuntimeError(
            f"produce: {remaining} records not delivered after {timeout_s}s, "
            f"{len(report.errors)} delivery errors (first: {report.errors[:1]})"
        )
    return report.delivered


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.simulate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--bootstrap_servers",
        default=None,
        help="Kafka bootstrap servers (default: the local stack's broker)",
    )
    parser.add_argument("--events_topic", default=EVENTS_TOPIC)
    parser.add_argument("--views_topic", default=VIEWS_TOPIC)
    parser.add_argument(
        "--oracle",
        default=".local/simulation/oracle.json",
        help="where to write the expected results",
    )
    parser.add_argument(
        "--rate_per_s", type=float, default=0.0, help="records per second (0 = as fast as possible)"
    )
    parser.add_argument(
        "--dry_run", action="store_true", help="plan and write the oracle, produce nothing"
    )
    for f in dataclasses.fields(SimulationSpec):
        if f.name == "end_ms":
            continue
        parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    parser.add_argument(
        "--end_ms",
        type=int,
        default=None,
        help="event time of the end of the simulated span (default: now)",
    )
    parser.add_argument(
        "--now_ms",
        type=int,
        default=None,
        help="the clock the plan is made at (default: now); with --end_ms and --seed, replays "
        "a logged plan exactly",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    spec = SimulationSpec(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(SimulationSpec)}
    )
    sim = generate(spec, now_ms=args.now_ms)
    LOG.info("same plan again: %s", sim.replay)
    import pathlib

    path = pathlib.Path(args.oracle)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sim.oracle.to_json())
    o = sim.oracle
    LOG.info(
        "planned %d records (%s); oracle: %d zips, %d hourly windows, %d alerts, "
        "%d dead letters, %d late -> %s",
        len(sim.records),
        o.records_by_topic,
        len(o.counts_by_zip),
        len(o.hourly_views),
        len(o.alert_ids),
        o.dead_letters,
        o.late,
        path,
    )
    if args.dry_run:
        return 0
    bootstrap = args.bootstrap_servers
    if bootstrap is None:
        from runners.local import Stack

        bootstrap = Stack.load().bootstrap_servers
    from pipelines.client_security import tool_client_config
    from pipelines.kafka_access import KafkaAccessError, check_access

    try:
        security = tool_client_config("producer", args.bootstrap_servers)
        if security:
            # Fail in seconds with one line (librdkafka retries a refused login without end).
            check_access(
                bootstrap,
                security,
                read_topics=[],
                write_topics=[args.events_topic, args.views_topic],
                user="the simulator's Kafka user",
            )
    except (KafkaAccessError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    n = produce(
        sim.records,
        bootstrap,
        topics={EVENTS_TOPIC: args.events_topic, VIEWS_TOPIC: args.views_topic},
        rate_per_s=args.rate_per_s,
        producer_config=security,
    )
    LOG.info("delivered %d records to %s", n, bootstrap)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
