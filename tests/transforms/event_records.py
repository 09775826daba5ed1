"""Builders of PropertyEvent/PropertyView payloads and Decoded records for the transform tests."""

from __future__ import annotations

import random
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from transforms.lateness import late_by_ms
from transforms.types import Decoded, KafkaRecord

# 2026-11-27T00:00:00Z, an hour boundary: windows in the tests start here.
T0_MS = 1_795_737_600_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def event_payload(**fields: Any) -> dict[str, Any]:
    """A valid PropertyEvent payload (every field of the schema; ``event_time`` at T0), ``fields``
    on top."""
    return {
        "event_id": "e-1",
        "event_type": "LISTING_CREATED",
        "property_id": "p-1",
        "zip_code": "94110",
        "property_type": "CONDO",
        "price": 750_000,
        "bedrooms": 2,
        "bathrooms": 1.5,
        "square_feet": 900,
        "event_time": T0_MS,
        **fields,
    }


def view_payload(**fields: Any) -> dict[str, Any]:
    """A valid PropertyView payload (``event_time`` at T0), ``fields`` on top."""
    return {
        "view_id": "v-1",
        "user_id": "u-1",
        "property_id": "p-1",
        "channel": "WEB",
        "event_time": T0_MS,
        **fields,
    }


def at(minutes: float) -> int:
    """Epoch ms ``minutes`` after T0."""
    return T0_MS + int(minutes * MINUTE_MS)


def ts(epoch_ms: int) -> Timestamp:
    return Timestamp(micros=epoch_ms * 1000)


def view(
    event_time: int,
    *,
    user_id: str = "u1",
    property_id: str = "p1",
    partition: int = 0,
    offset: int = 0,
    topic: str = "property-views",
) -> Decoded:
    payload = {
        "view_id": f"v-{topic}-{partition}-{offset}",
        "user_id": user_id,
        "property_id": property_id,
        "channel": "WEB",
        "event_time": event_time,
    }
    source = KafkaRecord(
        key=user_id.encode(),
        value=b"\x00\x00\x00\x00\x02" + payload["view_id"].encode(),
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=event_time,
    )
    return Decoded(payload=payload, schema_id=2, source=source)


def property_event(
    event_time: int,
    *,
    zip_code: str = "94107",
    price: int = 400_000,
    event_type: str = "LISTING_CREATED",
    property_id: str = "p1",
    partition: int = 0,
    offset: int = 0,
) -> Decoded:
    payload = {
        "event_id": f"e-{partition}-{offset}",
        "event_type": event_type,
        "property_id": property_id,
        "zip_code": zip_code,
        "property_type": "CONDO",
        "price": price,
        "bedrooms": 2,
        "bathrooms": 1.5,
        "square_feet": 900,
        "event_time": event_time,
    }
    source = KafkaRecord(
        key=property_id.encode(),
        value=b"\x00\x00\x00\x00\x01" + payload["event_id"].encode(),
        topic="property-events",
        partition=partition,
        offset=offset,
        timestamp_ms=event_time,
    )
    return Decoded(payload=payload, schema_id=1, source=source)


def stamped(decoded: Decoded) -> TimestampedValue:
    """The record as the Kafka read delivers it: timestamped with its record timestamp."""
    return TimestampedValue(decoded, ts(decoded.source.timestamp_ms))


def streaming_test_pipeline() -> TestPipeline:
    """A streaming TestPipeline (for TestStream) that keeps the --test-pipeline-options given on
    the command line, so the same tests run on Prism as on the DirectRunner."""
    return TestPipeline(
        options=PipelineOptions(TestPipeline().get_full_options_as_args(streaming=True))
    )


def _offsets(decoded: Decoded) -> tuple[int, int]:
    return (decoded.source.partition, decoded.source.offset)


def reference_late(log: list[Decoded], window_ms: int, lateness_ms: int) -> dict:
    """The contract's rule computed directly: per partition, in offset order."""
    stream_time: dict[int, int] = {}
    late = {}
    for record in sorted(log, key=_offsets):
        partition = record.source.partition
        late_by = late_by_ms(
            stream_time.get(partition), record.payload["event_time"], window_ms, lateness_ms
        )
        if late_by is not None:
            late[_offsets(record)] = late_by
        event_time = record.payload["event_time"]
        stream_time[partition] = max(stream_time.get(partition, event_time), event_time)
    return late


def random_log(seed: int, partitions: int = 3, per_partition: int = 200) -> list[Decoded]:
    """Views whose event times wander (mostly forward, sometimes hours back), interleaved."""
    rng = random.Random(seed)
    logs = []
    for partition in range(partitions):
        now = at(0)
        records = []
        for offset in range(per_partition):
            now += rng.randint(0, 4 * MINUTE_MS)
            back = rng.choice([0, 0, 0, 0, 5, 30, 65, 80, 180]) * MINUTE_MS
            records.append(
                view(
                    now - back,
                    partition=partition,
                    offset=offset,
                    property_id=f"p{rng.randint(0, 4)}",
                    user_id=f"u{rng.randint(0, 2)}",
                )
            )
        logs.append(records)
    interleaved = []
    while any(logs):
        source = rng.choice([log for log in logs if log])
        interleaved.append(source.pop(0))
    return interleaved


def live_stream(log: list[Decoded]) -> TestStream:
    """A live consumer: one record per bundle, partitions interleaved, and the watermark of
    Kafka's CreateTime policy: the slowest partition's largest record timestamp so far."""
    stream = TestStream()
    partitions = {r.source.partition for r in log}
    newest: dict[int, int] = {}
    watermark = None
    for record in log:
        stream = stream.add_elements([stamped(record)])
        partition = record.source.partition
        newest[partition] = max(newest.get(partition, 0), record.source.timestamp_ms)
        if set(newest) == partitions:
            candidate = min(newest.values())
            if watermark is None or candidate > watermark:
                watermark = candidate
                stream = stream.advance_watermark_to(ts(watermark))
    return stream.advance_watermark_to_infinity()


def replay_stream(log: list[Decoded], *, reorder_by_timestamp: bool) -> TestStream:
    """A replayed backlog: everything in one bundle and the watermark jumping to the end.

    With ``reorder_by_timestamp`` the bundle is ordered by timestamp, as Prism hands a stateful
    stage its pending elements."""
    records = sorted(log, key=lambda r: r.source.timestamp_ms) if reorder_by_timestamp else log
    return (
        TestStream()
        .add_elements([stamped(r) for r in records])
        .advance_watermark_to(ts(max(r.source.timestamp_ms for r in log) + 10 * HOUR_MS))
        .advance_watermark_to_infinity()
    )
