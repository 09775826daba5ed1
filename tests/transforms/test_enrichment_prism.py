"""EnrichWithMarketData on Prism (Beam's portable local runner): the handler, repeater, breaker and
cache survive pickling into a portable SDK worker, and the statuses are exact there too."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from runners.marketdata.processes import (
    MarketDataServer,
    RedisServer,
    market_data_server,
    redis_server,
)
from runners.presets import PRISM_BINARY
from tests.transforms.beam_results import counter_totals
from transforms.enrichment import COUNTER_NAMESPACE, EnrichWithMarketData
from transforms.types import Decoded, KafkaRecord

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TYPES = ("SINGLE_FAMILY", "CONDO", "TOWNHOUSE", "MULTI_FAMILY", "LAND")


@pytest.fixture(scope="module")
def service() -> Iterator[MarketDataServer]:
    with market_data_server() as server:
        yield server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def events(n: int) -> list[Decoded]:
    out = []
    for i in range(n):
        payload = {
            "event_id": f"e-{i}",
            "event_type": "LISTING_UPDATED",
            "property_id": f"p-{i}",
            "zip_code": f"{10001 + i % 10:05d}",
            "property_type": TYPES[(i // 10) % 5],
            "price": 250_000 + i,
            "bedrooms": None,
            "bathrooms": None,
            "square_feet": None,
            "event_time": 1_780_000_000_000 + i,
        }
        source = KafkaRecord(b"k", b"v", "property-events", 0, i, payload["event_time"])
        out.append(Decoded(payload, 1, source))
    return out


def status_of(decoded: Decoded) -> str:
    return str(decoded.payload["enrichment_status"])


def run_on_prism(transform: EnrichWithMarketData, n: int, expected: list[str]) -> dict[str, int]:
    if not PRISM_BINARY.exists():
        pytest.fail(f"Prism binary missing at {PRISM_BINARY}: run `make setup` (runners.install)")
    options = PipelineOptions(
        [
            "--runner=PrismRunner",
            f"--prism_location={PRISM_BINARY}",
            "--environment_type=LOOPBACK",
            # Beam 2.73's DirectRunner first tries Prism (downloading it from GitHub, which fails
            # here) and leaves that failed job server in PrismRunner's process-wide singleton;
            # without this, a Prism pipeline after a DirectRunner one in the same process fails.
            "--experiments=disable_prism_server_singleton",
        ]
    )
    pipeline = beam.Pipeline(options=options)
    statuses = (
        pipeline
        | "Create" >> beam.Create(events(n))
        | "Enrich" >> transform
        | "Status" >> beam.Map(status_of)
    )
    assert_that(statuses, equal_to(expected), label="CheckStatuses")
    result = pipeline.run()
    result.wait_until_finish()
    return counter_totals(result, COUNTER_NAMESPACE)


def test_on_prism_healthy_service_enriches_all_and_a_dead_one_serves_stale_copies(
    service: MarketDataServer, redis: RedisServer
) -> None:
    def transform() -> EnrichWithMarketData:
        return EnrichWithMarketData(
            service.url,
            call_timeout_s=0.5,
            initial_backoff_s=0.01,
            max_backoff_s=0.05,
            circuit_id=uuid.uuid4().hex,
        ).with_redis_cache(redis.host, redis.port, ttl_s=1, stale_ttl_s=600)

    service.reset()
    healthy = run_on_prism(transform(), 100, ["ENRICHED"] * 100)
    assert healthy["enriched"] == 100
    assert healthy.get("calls", 0) + healthy.get("cache_hits", 0) == 100
    time.sleep(2.1)  # cache entries (1 s) expire, stale copies stay
    service.set_faults(down=True)
    down = run_on_prism(transform(), 100, ["STALE"] * 100)
    assert down["stale"] == 100
    assert down["circuit_opened"] == 1 and down["circuit_rejected"] >= 90


def test_on_prism_unknown_zips_fall_back_without_retries() -> None:
    # A server that knows only zip 10001: events() spreads over 10001-10010, so 1 in 10 is known.
    with market_data_server("--zip-count", "1") as small:
        transform = EnrichWithMarketData(small.url, circuit_id=uuid.uuid4().hex)
        expected = ["ENRICHED" if i % 10 == 0 else "FALLBACK" for i in range(20)]
        counters = run_on_prism(transform, 20, expected)
        assert counters.get("retries", 0) == 0
        assert small.stats()["by_status"] == {"200": 2, "404": 18}
