"""What the EnrichWithMarketData tests share: test events, the transform with test timings, a
DirectRunner run that returns outputs and counters, and the accounting checks."""

from __future__ import annotations

import glob
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline

from tests.transforms.beam_results import counter_totals
from transforms.enrichment import COUNTER_NAMESPACE, EnrichWithMarketData
from transforms.types import Decoded, KafkaRecord

TYPES = ("SINGLE_FAMILY", "CONDO", "TOWNHOUSE", "MULTI_FAMILY", "LAND")
# spread_events' events use this many distinct (zip, type) keys.
SPREAD_KEYS = 50

# One output: (payload, schema_id, source offset).
Output = tuple[dict[str, Any], int, int]


def event(i: int, zip_code: str = "10001", property_type: str = "CONDO") -> Decoded:
    payload = {
        "event_id": f"e-{i}",
        "event_type": "LISTING_UPDATED",
        "property_id": f"p-{i}",
        "zip_code": zip_code,
        "property_type": property_type,
        "price": 400_000 + i,
        "bedrooms": 2,
        "bathrooms": 1.5,
        "square_feet": 900,
        "event_time": 1_780_000_000_000 + i,
    }
    source = KafkaRecord(b"p-%d" % i, b"raw", "property-events", 0, i, payload["event_time"])
    return Decoded(payload=payload, schema_id=1, source=source)


def spread_events(n: int) -> list[Decoded]:
    """n events over 10 zips x 5 types (SPREAD_KEYS distinct market keys)."""
    return [event(i, f"{10001 + i % 10:05d}", TYPES[(i // 10) % 5]) for i in range(n)]


def fast(url: str, **overrides: Any) -> EnrichWithMarketData:
    """The transform with short timeouts/backoffs and a fresh circuit (tests are independent)."""
    options: dict[str, Any] = {
        "call_timeout_s": 0.5,
        "max_retries": 2,
        "initial_backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "failure_threshold": 1000,
        "cooldown_s": 30.0,
        "circuit_id": uuid.uuid4().hex,
    }
    options.update(overrides)
    return EnrichWithMarketData(url, **options)


def run(
    events: list[Decoded],
    transform: EnrichWithMarketData,
    tmp_path: Path,
    before: beam.PTransform | None = None,
) -> tuple[list[Output], dict[str, int]]:
    """Run the transform (after ``before``, if given); the outputs (read back from files) and
    the enrichment counters."""
    out = tmp_path / f"out-{uuid.uuid4().hex}"
    pipeline = TestPipeline()
    created = pipeline | "Create" >> beam.Create(events)
    if before is not None:
        created = created | "Before" >> before
    enriched = created | "Enrich" >> transform
    _ = (
        enriched
        | "ToJson" >> beam.Map(lambda d: json.dumps([d.payload, d.schema_id, d.source.offset]))
        | "Write" >> beam.io.WriteToText(str(out))
    )
    result = pipeline.run()
    result.wait_until_finish()
    outputs = []
    for shard in glob.glob(f"{out}*"):
        for line in Path(shard).read_text().splitlines():
            payload, schema_id, offset = json.loads(line)
            outputs.append((payload, schema_id, offset))
    return outputs, counter_totals(result, COUNTER_NAMESPACE)


def statuses(outputs: list[Output]) -> Counter[str]:
    return Counter(payload["enrichment_status"] for payload, _, _ in outputs)


def assert_accounted(outputs: list[Output], n: int) -> None:
    """Every input came out exactly once (offsets are unique per test event)."""
    assert sorted(offset for _, _, offset in outputs) == list(range(n))
    assert sum(statuses(outputs).values()) == n
