"""The practical limit for Python here: the property topology as one plain confluent-kafka loop.

One consumer, one producer, one thread, no framework. It reads both input topics from offset 0 up
to given stop offsets and does, per record, what the Beam pipeline does, with the same plain rule
functions the pipeline's transforms use:

- decode (Confluent wire format, Avro: ``transforms.codec``) → DLQ on failure (stage ``decode``);
- validate (``transforms.validation``) → DLQ on failure (stage ``validate``);
- the late gate ("late in the log": per-partition stream time, ``transforms.lateness``) → late
  topic; a late record is counted nowhere else;
- events: high-value (price > threshold) → high-value topic; LISTING_UPDATED → enriched topic as
  ``enrichment_status = FALLBACK`` (no market-data service: the benchmark runs the pipeline
  without one too); a running count per zip, one ZipCount update per event;
- views: an alert on the view that takes a (user, 10-minute window) count past the threshold;
  hourly view counts per property, emitted once when the input ends (one ON_TIME pane per
  property-hour, as a bounded Beam run does);
- every output Avro-encoded (``transforms.codec``) and produced to its own topic.

What it does not do: market-data HTTP enrichment, Beam's watermarks and triggers (a live stream
would emit hourly counts at the watermark, not at the end), checkpoints or any fault tolerance.
State lives in dicts. Because a partition is consumed in offset order by one consumer, the gate's
decisions are exact without any hold-back.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.kafka_config import client_conf
from pipelines.property import OUTPUT_SPECS
from transforms import codec, validation
from transforms.aggregation import is_high_value, zip_count
from transforms.dead_letter import DeadLetter
from transforms.enrichment import enriched_event
from transforms.fraud import alert, crosses_threshold, window_start_ms
from transforms.lateness import late_by_ms, late_record, tumbling_window_end_ms
from transforms.types import Decoded, KafkaRecord
from transforms.windowing import view_count

# Output name -> (Avro schema of the catalog, field that keys the record): as the pipeline writes.
OUTPUT_SCHEMAS: dict[str, tuple[str, str]] = {
    name: (spec.schema, spec.key_field) for name, spec in OUTPUT_SPECS.items()
}
NO_MARKET_DATA = "no market-data service configured"


@dataclass(frozen=True)
class TopologyRules:
    """The numbers of the topology (the pipeline's defaults); checked at construction."""

    window_size_s: int = 3600
    allowed_lateness_s: int = 600
    fraud_threshold: int = 50
    fraud_window_s: int = 600
    high_value_threshold: int = 500_000

    def __post_init__(self) -> None:
        for name in ("window_size_s", "fraud_window_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TopologyRules.{name} must be > 0, got {getattr(self, name)}")
        for name in ("allowed_lateness_s", "fraud_threshold", "high_value_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"TopologyRules.{name} must be >= 0, got {getattr(self, name)}")


Output = tuple[str, dict[str, Any]]  # (output name, record dict in the output schema)


@dataclass
class Topology:
    """The whole topology's state and per-record logic, without Kafka (testable alone).

    ``events_topic`` / ``views_topic`` say which input a record comes from. ``process`` returns
    the outputs of one record; ``finish`` the outputs due when the input ends (hourly counts).
    """

    events_topic: str
    views_topic: str
    rules: TopologyRules = field(default_factory=TopologyRules)
    now_ms: Any = validation.wall_clock_ms
    stream_time: dict[tuple[str, int], int] = field(default_factory=dict)
    zips: Counter[str] = field(default_factory=Counter)
    zip_last_ms: dict[str, int] = field(default_factory=dict)
    fraud: Counter[tuple[str, int]] = field(default_factory=Counter)
    hourly: Counter[tuple[str, int]] = field(default_factory=Counter)

    def process(self, record: KafkaRecord) -> list[Output]:
        rejected, payload = self.admit(record)
        if payload is None:
            return rejected
        return self._event(payload) if record.topic == self.events_topic else self._view(payload)

    def admit(self, record: KafkaRecord) -> tuple[list[Output], dict[str, Any] | None]:
        """Decode, validate and gate one record: ``([], payload)`` when it passes, else
        ``([dead letter or late record], None)``. The stateless front of the topology."""
        is_event = record.topic == self.events_topic
        if not is_event and record.topic != self.views_topic:
            raise ValueError(f"record from {record.topic!r}, expected one of the two input topics")
        try:
            schema_id, payload = codec.decode_record(
                record.value, "PropertyEvent" if is_event else "PropertyView"
            )
        except codec.DecodeError as exc:
            return [("dead_letters", _dead_letter(codec.STAGE, record, exc))], None
        try:
            if is_event:
                validation.check_property_event(payload, self.now_ms())
            else:
                validation.check_property_view(payload)
        except validation.ValidationError as exc:
            return [("dead_letters", _dead_letter(validation.STAGE, record, exc))], None
        late = self._gate(Decoded(payload, schema_id, record))
        if late is not None:
            return [("late", late)], None
        return [], payload

    def finish(self) -> list[Output]:
        """One ON_TIME hourly count per property and hour (the end of a bounded input)."""
        size_ms = self.rules.window_size_s * 1000
        return [
            ("views_hourly", view_count(prop, start, start + size_ms, n, "ON_TIME"))
            for (prop, start), n in sorted(self.hourly.items())
        ]

    def _gate(self, decoded: Decoded) -> dict[str, Any] | None:
        where = (decoded.source.topic, decoded.source.partition)
        event_time = int(decoded.payload["event_time"])
        size_ms = self.rules.window_size_s * 1000
        before = self.stream_time.get(where)
        late_by = late_by_ms(before, event_time, size_ms, self.rules.allowed_lateness_s * 1000)
        if late_by is not None:
            return late_record(decoded, tumbling_window_end_ms(event_time, size_ms), late_by)
        self.stream_time[where] = event_time if before is None else max(before, event_time)
        return None

    def _event(self, payload: dict[str, Any]) -> list[Output]:
        out: list[Output] = []
        if is_high_value(payload, self.rules.high_value_threshold):
            out.append(("high_value", payload))
        if payload["event_type"] == "LISTING_UPDATED":
            out.append(("enriched", enriched_event(payload, None, NO_MARKET_DATA)))
        zip_code, event_time = payload["zip_code"], int(payload["event_time"])
        self.zips[zip_code] += 1
        last = max(self.zip_last_ms.get(zip_code, event_time), event_time)
        self.zip_last_ms[zip_code] = last
        out.append(("counts_by_zip", zip_count(zip_code, self.zips[zip_code], last)))
        return out

    def _view(self, payload: dict[str, Any]) -> list[Output]:
        event_time = int(payload["event_time"])
        hour = window_start_ms(event_time, self.rules.window_size_s * 1000)
        self.hourly[(payload["property_id"], hour)] += 1
        fraud_ms = self.rules.fraud_window_s * 1000
        key = (payload["user_id"], window_start_ms(event_time, fraud_ms))
        before = self.fraud[key]
        self.fraud[key] = before + 1
        if crosses_threshold(before, before + 1, self.rules.fraud_threshold):
            return [
                (
                    "alerts",
                    alert(
                        key[0], key[1], key[1] + fraud_ms, before + 1, self.rules.fraud_threshold
                    ),
                )
            ]
        return []


def _dead_letter(stage: str, record: KafkaRecord, exc: Exception) -> dict[str, Any]:
    return DeadLetter.from_error(stage, record, (type(exc), repr(exc), [])).to_avro()


def encode_output(name: str, record: Mapping[str, Any]) -> tuple[bytes | None, bytes]:
    """``(key, value)`` of an output record, keyed and encoded as the pipeline writes it."""
    schema, key_field = OUTPUT_SCHEMAS[name]
    key = record.get(key_field)
    if isinstance(key, str):
        key = key.encode()
    return key, codec.encode_record(record, schema)


@dataclass
class LoopStats:
    """What one run of the loop did; times are ``time.time()`` seconds."""

    consumed: int = 0
    produced: Counter[str] = field(default_factory=Counter)
    first_consumed_s: float | None = None
    last_consumed_s: float | None = None
    flushed_s: float | None = None


def run(
    bootstrap_servers: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    stop_offsets: Mapping[tuple[str, int], int],
    *,
    rules: TopologyRules | None = None,
    timeout_s: float = 1800.0,
    producer_config: Mapping[str, Any] | None = None,
    consume_batch: int = 5_000,
    consume_timeout_s: float = 0.5,
) -> LoopStats:
    """Consume ``stop_offsets``' partitions from offset 0 to their stop offsets, process, produce.

    ``inputs`` maps ``events``/``views`` to topic names, ``outputs`` maps each output name of
    ``OUTPUT_SCHEMAS`` to its topic. Raises ``TimeoutError`` when the input is not consumed within
    ``timeout_s``. ``consume_batch`` / ``consume_timeout_s`` bound one ``Consumer.consume`` call,
    which waits until the batch is full or the timeout passes: large for throughput, small for
    latency (``bench.latency``), where a half-empty batch must not wait.
    """
    from confluent_kafka import Consumer, Producer, TopicPartition

    missing = set(OUTPUT_SCHEMAS) - set(outputs)
    if missing or {"events", "views"} - set(inputs):
        raise ValueError(f"outputs lack {sorted(missing)} or inputs lack events/views: {inputs}")
    topology = Topology(inputs["events"], inputs["views"], rules or TopologyRules())
    consumer = Consumer(
        client_conf(
            bootstrap_servers,
            settings={
                "group.id": f"raw-loop-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # Large fetches: the loop is CPU-bound, not latency-bound, in a backfill.
                "fetch.max.bytes": 52_428_800,
                "max.partition.fetch.bytes": 10_485_760,
            },
        )
    )
    producer = Producer(
        client_conf(
            bootstrap_servers,
            settings={
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                **(producer_config or {}),
            },
        )
    )
    stats = LoopStats()
    remaining = {tp: end for tp, end in stop_offsets.items() if end > 0}
    consumer.assign([TopicPartition(t, p, 0) for t, p in remaining])
    deadline = time.monotonic() + timeout_s

    def send(name: str, record: dict[str, Any]) -> None:
        key, value = encode_output(name, record)
        while True:
            try:
                producer.produce(outputs[name], value=value, key=key)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.05)
        stats.produced[name] += 1

    try:
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw loop: {remaining} not consumed after {timeout_s} s")
            for msg in consumer.consume(num_messages=consume_batch, timeout=consume_timeout_s):
                if msg.error():
                    raise RuntimeError(f"raw loop: consumer error {msg.error()}")
                where = (msg.topic(), msg.partition())
                end = remaining.get(where)
                if end is None or msg.offset() >= end:
                    continue  # past the stop offset (an end marker, or a later record)
                now = time.time()
                stats.first_consumed_s = stats.first_consumed_s or now
                stats.last_consumed_s = now
                stats.consumed += 1
                record = KafkaRecord(
                    key=msg.key(),
                    value=msg.value(),
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    timestamp_ms=msg.timestamp()[1],
                )
                for name, out in topology.process(record):
                    send(name, out)
                if msg.offset() + 1 >= end:
                    del remaining[where]
            producer.poll(0)
        for name, out in topology.finish():
            send(name, out)
        left = producer.flush(max(1.0, deadline - time.monotonic()))
        if left:
            raise TimeoutError(f"raw loop: {left} output records not acknowledged")
        stats.flushed_s = time.time()
    finally:
        consumer.close()
    return stats
