"""EnrichWithMarketData against the real market-data service and a real redis-server.

Every test runs a Beam pipeline (DirectRunner) over real HTTP; faults are switched on the running
service through its admin endpoint, and its request statistics prove how many calls were made.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
import redis as redis_client
import requests
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from runners.marketdata.dataset import market_record
from runners.marketdata.processes import (
    MarketDataServer,
    RedisServer,
    free_port,
    redis_server,
)
from tests.transforms.enrichment_support import (
    assert_accounted,
    event,
    fast,
    run,
    spread_events,
    statuses,
)
from transforms.enrichment import (
    ENRICHED,
    ENRICHED_SCHEMA_ID,
    FALLBACK,
    MARKET_FIELDS,
    STALE,
    EnrichWithMarketData,
)
from transforms.types import Decoded

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def empty_redis(redis: RedisServer) -> RedisServer:
    client = redis_client.Redis(redis.host, redis.port)
    client.flushall()
    client.close()
    return redis


# ----------------------------------------------------------------------------- success


def test_healthy_service_enriches_every_event_with_its_zip_and_type_data(
    service: MarketDataServer, tmp_path: Path
) -> None:
    events = spread_events(30)
    outputs, counters = run(events, fast(service.url), tmp_path)
    assert_accounted(outputs, 30)
    assert statuses(outputs) == {ENRICHED: 30}
    for payload, schema_id, offset in outputs:
        original = events[offset].payload
        expected = market_record(42, original["zip_code"], original["property_type"])
        assert schema_id == ENRICHED_SCHEMA_ID
        assert {k: payload[k] for k in original} == original
        assert {f: payload[f] for f in MARKET_FIELDS} == {f: expected[f] for f in MARKET_FIELDS}
        assert payload["enrichment_error"] is None
    assert counters["calls"] == 30 and counters["enriched"] == 30
    assert counters.get("fallbacks", 0) == 0
    assert service.stats()["market_requests"] == 30


def test_enriched_decoded_keeps_the_source_record_and_takes_schema_id_100(
    service: MarketDataServer,
) -> None:
    with TestPipeline() as p:
        out = p | "Create" >> beam.Create([event(7)]) | "Enrich" >> fast(service.url)

        def check(elements: list[Decoded]) -> None:
            (only,) = elements
            assert only.source == event(7).source
            assert only.schema_id == 100
            assert only.payload["enrichment_status"] == ENRICHED

        assert_that(out, check, label="CheckEnriched")


# ----------------------------------------------------------------------------- faults


def test_timeouts_fall_back_after_the_retries_with_the_reason(
    service: MarketDataServer, tmp_path: Path
) -> None:
    service.set_faults(latency_ms=1500)
    outputs, counters = run(
        [event(i) for i in range(3)], fast(service.url, call_timeout_s=0.2), tmp_path
    )
    assert_accounted(outputs, 3)
    assert statuses(outputs) == {FALLBACK: 3}
    for payload, _, _ in outputs:
        assert "MarketDataTimeout" in payload["enrichment_error"]
        assert "after 3 attempts" in payload["enrichment_error"]
        assert all(payload[f] is None for f in MARKET_FIELDS)
    assert counters["calls"] == 9 and counters["retries"] == 6 and counters["fallbacks"] == 3


def test_server_errors_are_retried_then_fall_back(
    service: MarketDataServer, tmp_path: Path
) -> None:
    service.set_faults(error_rate=1.0)
    outputs, counters = run([event(i) for i in range(5)], fast(service.url), tmp_path)
    assert_accounted(outputs, 5)
    assert statuses(outputs) == {FALLBACK: 5}
    assert all("500" in p["enrichment_error"] for p, _, _ in outputs)
    # 1 call + 2 retries each.
    assert service.stats()["by_status"] == {"500": 15}
    assert counters["call_failures"] == 15


def replay_error_draws(seed: int, error_rate: float, events: int, attempts: int) -> tuple[int, int]:
    """(events enriched, calls made) when ``events`` events are looked up one after the other,
    each retried up to ``attempts`` times, against a server that answers 500 when its seeded
    draw is below ``error_rate`` (``runners/marketdata/app.py``: one draw per request)."""
    draws = random.Random(seed)
    enriched = calls = 0
    for _ in range(events):
        for _ in range(attempts):
            calls += 1
            if not draws.random() < error_rate:
                enriched += 1
                break
    return enriched, calls


def test_intermittent_server_errors_are_mostly_recovered_by_retries(
    service: MarketDataServer, tmp_path: Path
) -> None:
    service.set_faults(error_rate=0.3)
    seed = requests.get(f"{service.url}/healthz", timeout=5).json()["seed"]
    # The DirectRunner looks events up one at a time, so the server's seeded draws decide every
    # attempt; a generous call timeout keeps the client's view equal to the server's.
    transform = fast(service.url, max_retries=3, call_timeout_s=10.0)
    outputs, counters = run(spread_events(100), transform, tmp_path)
    assert_accounted(outputs, 100)
    enriched, calls = replay_error_draws(seed, 0.3, events=100, attempts=4)
    # P(4 failures in a row) = 0.3^4 < 1 %: nearly all enriched, and every event accounted for.
    assert enriched >= 95
    assert statuses(outputs) == {ENRICHED: enriched, FALLBACK: 100 - enriched}
    assert service.stats()["by_status"] == {"200": enriched, "500": calls - enriched}
    assert counters["calls"] == calls and counters["retries"] == calls - 100
    assert counters["enriched"] + counters.get("fallbacks", 0) == 100


def test_rate_limited_calls_are_retried_and_fall_back_with_the_reason(
    service: MarketDataServer, tmp_path: Path
) -> None:
    service.set_faults(rate_limit_rps=0, retry_after_s=1)
    outputs, counters = run([event(i) for i in range(2)], fast(service.url), tmp_path)
    assert_accounted(outputs, 2)
    assert statuses(outputs) == {FALLBACK: 2}
    assert all("429" in p["enrichment_error"] for p, _, _ in outputs)
    assert service.stats()["by_status"] == {"429": 6}
    # Retry-After (1 s) is honoured up to max_backoff_s (0.05 s) before each of the 2 retries of
    # each event: 4 waits of 50 ms, no long stall.
    assert counters["retry_after_wait_ms"] == 4 * 50


def test_rate_limit_slows_the_calls_and_retries_get_every_event_through(
    service: MarketDataServer, tmp_path: Path
) -> None:
    rps, n, max_backoff_s = 5, 30, 0.5
    service.set_faults(rate_limit_rps=rps)
    transform = fast(
        service.url,
        max_retries=6,
        initial_backoff_s=0.05,
        max_backoff_s=max_backoff_s,
        call_timeout_s=10.0,
    )
    outputs, counters = run(spread_events(n), transform, tmp_path)
    assert_accounted(outputs, n)
    # The events are looked up one at a time and a 429 is followed by a wait of at least
    # min(Retry-After, max_backoff_s) = 0.5 s, in which the bucket refills 2.5 tokens: the retry
    # after a 429 always gets through, so no event falls back.
    assert max_backoff_s * rps >= 1
    assert statuses(outputs) == {ENRICHED: n}
    by_status = service.stats()["by_status"]
    limited = by_status.get("429", 0)
    assert by_status == {"200": n, "429": limited}
    assert counters["retries"] == limited == counters["call_failures"]
    assert counters["retry_after_wait_ms"] == limited * 500
    # The bucket holds 5 tokens and refills 5 a second: 30 lookups made within 5 s must meet a
    # 429 (a lookup here takes milliseconds).
    assert limited >= 1


def test_service_down_falls_back_for_every_event(service: MarketDataServer, tmp_path: Path) -> None:
    service.set_faults(down=True)
    outputs, _ = run([event(i) for i in range(4)], fast(service.url), tmp_path)
    assert_accounted(outputs, 4)
    assert statuses(outputs) == {FALLBACK: 4}
    assert all("503" in p["enrichment_error"] for p, _, _ in outputs)


def test_no_process_listening_falls_back_with_a_connection_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    outputs, counters = run([event(i) for i in range(4)], fast(url), tmp_path)
    assert_accounted(outputs, 4)
    assert statuses(outputs) == {FALLBACK: 4}
    assert all("ConnectionError" in p["enrichment_error"] for p, _, _ in outputs)
    assert counters["calls"] == 12


def test_unknown_zip_falls_back_after_one_call_without_retries(
    service: MarketDataServer, tmp_path: Path
) -> None:
    events = [event(i, "99999", "CONDO") for i in range(10)]
    outputs, counters = run(events, fast(service.url), tmp_path)
    assert_accounted(outputs, 10)
    assert statuses(outputs) == {FALLBACK: 10}
    assert all("404" in p["enrichment_error"] for p, _, _ in outputs)
    assert service.stats()["by_status"] == {"404": 10}  # one call per event, no retry storm
    assert counters.get("retries", 0) == 0


def test_malformed_answer_falls_back_counted_without_retries(
    service: MarketDataServer, tmp_path: Path
) -> None:
    service.set_faults(malformed_rate=1.0)
    outputs, counters = run([event(i) for i in range(5)], fast(service.url), tmp_path)
    assert_accounted(outputs, 5)
    assert statuses(outputs) == {FALLBACK: 5}
    assert all("MalformedMarketData" in p["enrichment_error"] for p, _, _ in outputs)
    assert service.stats()["market_requests"] == 5
    assert counters["fallbacks"] == 5 and counters["call_failures"] == 5


# ----------------------------------------------------------------------------- circuit


def test_open_circuit_stops_calling_a_dead_service(
    service: MarketDataServer, tmp_path: Path
) -> None:
    service.set_faults(error_rate=1.0)
    transform = fast(service.url, max_retries=0, failure_threshold=3, cooldown_s=300)
    outputs, counters = run([event(i) for i in range(50)], transform, tmp_path)
    assert_accounted(outputs, 50)
    assert statuses(outputs) == {FALLBACK: 50}
    assert service.stats()["market_requests"] == 3
    assert counters["circuit_opened"] == 1 and counters["circuit_rejected"] == 47
    rejected = [p for p, _, _ in outputs if "CircuitOpenError" in p["enrichment_error"]]
    assert len(rejected) == 47


def test_open_circuit_makes_a_dead_slow_service_cheap(
    service: MarketDataServer, tmp_path: Path
) -> None:
    service.set_faults(latency_ms=2000)
    transform = fast(
        service.url, call_timeout_s=0.2, max_retries=0, failure_threshold=2, cooldown_s=300
    )
    outputs, counters = run([event(i) for i in range(40)], transform, tmp_path)
    assert_accounted(outputs, 40)
    assert statuses(outputs) == {FALLBACK: 40}
    # Without the breaker: 40 timeouts of 0.2 s; with it: 2 timeouts, then 38 rejections made
    # without a call.
    assert counters["calls"] == 2 and counters["circuit_rejected"] == 38
    assert service.stats()["market_requests"] == 2
    timed_out = [p for p, _, _ in outputs if "MarketDataTimeout" in p["enrichment_error"]]
    rejected = [p for p, _, _ in outputs if "CircuitOpenError" in p["enrichment_error"]]
    assert len(timed_out) == 2 and len(rejected) == 38


def test_circuit_closes_by_itself_when_the_service_recovers(
    service: MarketDataServer, tmp_path: Path
) -> None:
    circuit = uuid.uuid4().hex
    service.set_faults(error_rate=1.0)
    failing = fast(
        service.url, max_retries=0, failure_threshold=2, cooldown_s=0.5, circuit_id=circuit
    )
    outputs, counters = run([event(i) for i in range(10)], failing, tmp_path)
    assert statuses(outputs) == {FALLBACK: 10}
    assert counters["circuit_opened"] == 1
    service.set_faults(reset=True)
    time.sleep(0.6)  # the cool-down passes
    recovering = fast(
        service.url, max_retries=0, failure_threshold=2, cooldown_s=0.5, circuit_id=circuit
    )
    outputs, counters = run([event(i) for i in range(10)], recovering, tmp_path)
    assert statuses(outputs) == {ENRICHED: 10}
    assert counters["circuit_half_opened"] == 1 and counters["circuit_closed"] == 1


# ----------------------------------------------------------------------------- cache


def test_cold_cache_calls_once_per_key_and_warm_cache_calls_nothing(
    service: MarketDataServer, empty_redis: RedisServer, tmp_path: Path
) -> None:
    events = spread_events(200)  # 50 distinct (zip, type) keys

    def cached() -> EnrichWithMarketData:
        return fast(service.url).with_redis_cache(empty_redis.host, empty_redis.port, ttl_s=300)

    # Keys repeated within one bundle miss together on a cold cache (the write comes after the
    # call), so the first run calls at most once per event and stores each key once.
    cold, cold_counters = run(events, cached(), tmp_path)
    assert statuses(cold) == {ENRICHED: 200}
    cold_calls = service.stats()["market_requests"]
    assert 50 <= cold_calls <= 200
    assert cold_counters["calls"] == cold_calls
    client = redis_client.Redis(empty_redis.host, empty_redis.port)
    assert len(client.keys("market:*")) == 50
    ttl = client.ttl("market:10001:SINGLE_FAMILY")
    assert 0 < ttl <= 300

    warm, warm_counters = run(events, cached(), tmp_path)
    assert statuses(warm) == {ENRICHED: 200}
    assert service.stats()["market_requests"] == cold_calls  # not one more call
    assert warm_counters["cache_hits"] == 200
    assert warm_counters.get("calls", 0) == 0
    # Cached answers are the same data as fresh ones.
    by_offset = {o: p for p, _, o in cold}
    assert all(p == by_offset[o] for p, _, o in warm)


def test_not_found_is_cached_for_its_own_ttl_so_unknown_keys_stop_calling(
    service: MarketDataServer, empty_redis: RedisServer, tmp_path: Path
) -> None:
    events = [event(i, "99999", "CONDO") for i in range(10)]

    def cached() -> EnrichWithMarketData:
        return fast(service.url).with_redis_cache(
            empty_redis.host, empty_redis.port, ttl_s=300, not_found_ttl_s=60
        )

    cold, _ = run(events, cached(), tmp_path)
    assert statuses(cold) == {FALLBACK: 10}
    cold_calls = service.stats()["by_status"]["404"]
    assert 1 <= cold_calls <= 10  # keys of one bundle miss together on a cold cache
    client = redis_client.Redis(empty_redis.host, empty_redis.port)
    assert client.keys("market:*") == [b"market:99999:CONDO"]
    assert 0 < client.ttl("market:99999:CONDO") <= 60  # its own TTL, not the 300 s of data

    warm, counters = run(events, cached(), tmp_path)
    assert service.stats()["by_status"] == {"404": cold_calls}  # not one more call
    assert counters["cache_hits"] == 10 and counters["cache_not_found_hits"] == 10
    assert counters.get("calls", 0) == 0
    # A cached "no data" is the same output as a fresh 404: FALLBACK with the 404 as the error.
    by_offset = {o: p for p, _, o in cold}
    assert all(p == by_offset[o] for p, _, o in warm)
    assert all("404" in p["enrichment_error"] for p, _, _ in warm)


def test_not_found_is_not_cached_unless_asked(
    service: MarketDataServer, empty_redis: RedisServer, tmp_path: Path
) -> None:
    transform = fast(service.url).with_redis_cache(empty_redis.host, empty_redis.port, 300)
    outputs, _ = run([event(i, "99999", "CONDO") for i in range(3)], transform, tmp_path)
    assert statuses(outputs) == {FALLBACK: 3}
    assert redis_client.Redis(empty_redis.host, empty_redis.port).keys("market:*") == []


def test_fallbacks_are_not_cached_so_recovery_is_seen_at_once(
    service: MarketDataServer, empty_redis: RedisServer, tmp_path: Path
) -> None:
    service.set_faults(down=True)
    transform = fast(service.url).with_redis_cache(empty_redis.host, empty_redis.port, 300)
    outputs, _ = run([event(i) for i in range(3)], transform, tmp_path)
    assert statuses(outputs) == {FALLBACK: 3}
    client = redis_client.Redis(empty_redis.host, empty_redis.port)
    assert client.keys("market:*") == []
    service.set_faults(reset=True)
    transform = fast(service.url).with_redis_cache(empty_redis.host, empty_redis.port, 300)
    outputs, _ = run([event(i) for i in range(3)], transform, tmp_path)
    assert statuses(outputs) == {ENRICHED: 3}


def test_warm_cache_keeps_enriching_while_the_service_is_down(
    service: MarketDataServer, empty_redis: RedisServer, tmp_path: Path
) -> None:
    events = spread_events(50)
    transform = fast(service.url).with_redis_cache(empty_redis.host, empty_redis.port, 300)
    run(events, transform, tmp_path)
    service.set_faults(down=True)
    transform = fast(service.url).with_redis_cache(empty_redis.host, empty_redis.port, 300)
    outputs, counters = run(events, transform, tmp_path)
    assert statuses(outputs) == {ENRICHED: 50}
    assert counters["cache_hits"] == 50


def test_expired_cache_entry_is_fetched_again(
    service: MarketDataServer, empty_redis: RedisServer, tmp_path: Path
) -> None:
    transform = fast(service.url).with_redis_cache(empty_redis.host, empty_redis.port, 1)
    run([event(0)], transform, tmp_path)
    time.sleep(2.1)  # TTL 1 s
    transform = fast(service.url).with_redis_cache(empty_redis.host, empty_redis.port, 1)
    outputs, counters = run([event(1)], transform, tmp_path)
    assert statuses(outputs) == {ENRICHED: 1}
    assert counters["calls"] == 1 and counters.get("cache_hits", 0) == 0
    assert service.stats()["market_requests"] == 2


# ----------------------------------------------------------------------------- accounting


@pytest.mark.parametrize(
    "faults",
    [
        {},
        {"error_rate": 0.5},
        {"error_rate": 1.0},
        {"rate_limit_rps": 30},
        {"down": True},
        {"malformed_rate": 0.5},
        {"latency_ms": 400},
    ],
    ids=["healthy", "errors-50pct", "errors-100pct", "rate-limited", "down", "malformed", "slow"],
)
@pytest.mark.parametrize("cache", ["none", "redis", "redis-stale"])
def test_every_event_comes_out_exactly_once_under_every_fault_mode(
    service: MarketDataServer,
    empty_redis: RedisServer,
    tmp_path: Path,
    faults: dict[str, Any],
    cache: str,
) -> None:
    if faults:
        service.set_faults(**faults)
    transform = fast(service.url, call_timeout_s=0.3, failure_threshold=10, cooldown_s=1.0)
    if cache == "redis":
        transform = transform.with_redis_cache(empty_redis.host, empty_redis.port, 300)
    if cache == "redis-stale":
        # Stale copies of half the keys from an earlier (healthy) run, cache entries expired.
        service.set_faults(reset=True)
        warmup = fast(service.url).with_redis_cache(
            empty_redis.host, empty_redis.port, ttl_s=1, stale_ttl_s=300
        )
        run(spread_events(25), warmup, tmp_path)
        time.sleep(2.1)
        if faults:
            service.set_faults(**faults)
        transform = transform.with_redis_cache(
            empty_redis.host, empty_redis.port, ttl_s=1, stale_ttl_s=300
        )
    n = 120
    outputs, counters = run(spread_events(n), transform, tmp_path)
    assert_accounted(outputs, n)
    counts = statuses(outputs)
    assert counts[ENRICHED] + counts[FALLBACK] + counts[STALE] == n
    assert counters.get("enriched", 0) == counts[ENRICHED]
    assert counters.get("fallbacks", 0) == counts[FALLBACK]
    assert counters.get("stale", 0) == counts[STALE]
    if cache != "redis-stale":
        assert counts[STALE] == 0
    for payload, _, _ in outputs:
        if payload["enrichment_status"] != ENRICHED:
            assert payload["enrichment_error"]


# ----------------------------------------------------------------------------- stale-on-error


def test_expired_entry_is_served_stale_with_the_reason_while_the_service_is_down(
    service: MarketDataServer, empty_redis: RedisServer, tmp_path: Path
) -> None:
    def stale_capable() -> EnrichWithMarketData:
        return fast(service.url).with_redis_cache(
            empty_redis.host, empty_redis.port, ttl_s=1, stale_ttl_s=300
        )

    fresh, _ = run(spread_events(20), stale_capable(), tmp_path)
    assert statuses(fresh) == {ENRICHED: 20}
    time.sleep(2.1)  # every cache entry expires; the stale copies (300 s) remain
    service.set_faults(down=True)
    outputs, counters = run(spread_events(20), stale_capable(), tmp_path)
    assert_accounted(outputs, 20)
    assert statuses(outputs) == {STALE: 20}
    fresh_by_offset = {o: p for p, _, o in fresh}
    for payload, _, offset in outputs:
        assert "503" in payload["enrichment_error"]
        assert {f: payload[f] for f in MARKET_FIELDS} == {
            f: fresh_by_offset[offset][f] for f in MARKET_FIELDS
        }
    assert counters["stale"] == 20 and counters.get("fallbacks", 0) == 0


def test_unknown_zip_is_never_served_stale(
    service: MarketDataServer, empty_redis: RedisServer, tmp_path: Path
) -> None:
    transform = fast(service.url).with_redis_cache(
        empty_redis.host, empty_redis.port, ttl_s=1, stale_ttl_s=300
    )
    outputs, _ = run([event(i, "99999") for i in range(3)], transform, tmp_path)
    assert statuses(outputs) == {FALLBACK: 3}


def test_stale_off_falls_back_once_the_entry_expired(
    service: MarketDataServer, empty_redis: RedisServer, tmp_path: Path
) -> None:
    def plain() -> EnrichWithMarketData:
        return fast(service.url).with_redis_cache(empty_redis.host, empty_redis.port, ttl_s=1)

    run([event(0)], plain(), tmp_path)
    time.sleep(2.1)
    service.set_faults(down=True)
    outputs, _ = run([event(0)], plain(), tmp_path)
    assert statuses(outputs) == {FALLBACK: 1}


# ----------------------------------------------------------------------------- batching


def test_batches_enrich_every_event_with_far_fewer_calls(
    service: MarketDataServer, tmp_path: Path
) -> None:
    events = spread_events(200)  # 50 keys
    outputs, counters = run(events, fast(service.url, batch_size=50), tmp_path)
    assert_accounted(outputs, 200)
    assert statuses(outputs) == {ENRICHED: 200}
    for payload, _, offset in outputs:
        original = events[offset].payload
        expected = market_record(42, original["zip_code"], original["property_type"])
        assert {f: payload[f] for f in MARKET_FIELDS} == {f: expected[f] for f in MARKET_FIELDS}
    batch_calls = service.stats()["market_requests"]
    assert batch_calls == counters["calls"]
    # One call per batch. A batch holds at most 50 events; BatchElements sizes them from the
    # time they take (1, 1, 2, then up to 2x more each time), so how few calls it makes depends
    # on the machine, but every batch after the second holds more than one event.
    assert math.ceil(200 / 50) <= batch_calls < 200


def test_unknown_zip_in_a_batch_falls_back_for_that_event_only_without_retries(
    service: MarketDataServer, tmp_path: Path
) -> None:
    events = [event(i, "99999" if i % 2 else "10001") for i in range(20)]
    outputs, counters = run(events, fast(service.url, batch_size=20), tmp_path)
    assert_accounted(outputs, 20)
    assert statuses(outputs) == {ENRICHED: 10, FALLBACK: 10}
    for payload, _, offset in outputs:
        if offset % 2:
            assert payload["enrichment_status"] == FALLBACK
            assert "MarketDataNotFound: 404" in payload["enrichment_error"]
    assert counters.get("retries", 0) == 0


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        ({"down": True}, "503"),
        ({"malformed_rate": 1.0}, "MalformedMarketData"),
        ({"latency_ms": 1500}, "MarketDataTimeout"),
    ],
    ids=["down", "malformed", "slow"],
)
def test_a_failed_batch_call_falls_back_for_every_event_of_the_batch(
    service: MarketDataServer, tmp_path: Path, faults: dict[str, Any], reason: str
) -> None:
    service.set_faults(**faults)
    transform = fast(service.url, batch_size=10, call_timeout_s=0.3)
    outputs, _ = run(spread_events(30), transform, tmp_path)
    assert_accounted(outputs, 30)
    assert statuses(outputs) == {FALLBACK: 30}
    assert all(reason in p["enrichment_error"] for p, _, _ in outputs)


def test_batches_with_cache_and_stale_copies_serve_stale_when_the_service_is_down(
    service: MarketDataServer, empty_redis: RedisServer, tmp_path: Path
) -> None:
    def batched() -> EnrichWithMarketData:
        return fast(service.url, batch_size=25).with_redis_cache(
            empty_redis.host, empty_redis.port, ttl_s=1, stale_ttl_s=300
        )

    fresh, _ = run(spread_events(100), batched(), tmp_path)
    assert statuses(fresh) == {ENRICHED: 100}
    time.sleep(2.1)
    service.set_faults(down=True)
    outputs, counters = run(spread_events(100), batched(), tmp_path)
    assert_accounted(outputs, 100)
    assert statuses(outputs) == {STALE: 100}
    assert counters["stale"] == 100


@pytest.mark.parametrize(
    "faults",
    [{}, {"error_rate": 0.5}, {"rate_limit_rps": 10}, {"down": True}, {"malformed_rate": 0.5}],
    ids=["healthy", "errors-50pct", "rate-limited", "down", "malformed"],
)
def test_batched_every_event_comes_out_exactly_once_under_every_fault_mode(
    service: MarketDataServer, tmp_path: Path, faults: dict[str, Any]
) -> None:
    if faults:
        service.set_faults(**faults)
    transform = fast(service.url, batch_size=20, failure_threshold=10, cooldown_s=1.0)
    outputs, counters = run(spread_events(120), transform, tmp_path)
    assert_accounted(outputs, 120)
    counts = statuses(outputs)
    assert counts[ENRICHED] + counts[FALLBACK] == 120
    assert counters.get("enriched", 0) == counts[ENRICHED]
    assert counters.get("fallbacks", 0) == counts[FALLBACK]
