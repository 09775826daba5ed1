"""Builders of Decoded PropertyView/PropertyEvent records for the time-related transform tests."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from transforms.types import Decoded, KafkaRecord

# 2026-11-27T00:00:00Z, an hour boundary: windows in the tests start here.
T0_MS = 1_795_737_600_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000


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
