"""The plain rules of the enrichment: response parsing, the enriched record, the circuit breaker,
the repeater with plain callers, argument validation. No Beam pipeline, no service."""

from __future__ import annotations

import io
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest
from apache_beam.io.requestresponse import Caller, UserCodeTimeoutException

from runners.marketdata.dataset import market_record
from schemas import ENRICHED_PROPERTY_EVENT_ID, parse_for_python
from tests.contract_files import CONTRACT_DIR
from transforms.enrichment import (
    CLOSED,
    ENRICHED,
    ENRICHED_SCHEMA_ID,
    FALLBACK,
    HALF_OPEN,
    MARKET_FIELDS,
    OPEN,
    STALE,
    CircuitBreaker,
    EnrichWithMarketData,
    MarketDataNotFound,
    MarketDataUnavailable,
    ResiliencePolicy,
    ResilientRepeater,
    cache_key,
    call_with_timeout,
    enriched_event,
    is_transient,
    parse_batch_results,
    parse_market_record,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "enriched_property_event.avsc"
CONTRACT_FILE = CONTRACT_DIR / "property_event.avsc"

PAYLOAD = {
    "event_id": "e-1",
    "event_type": "LISTING_UPDATED",
    "property_id": "p-1",
    "zip_code": "10001",
    "property_type": "CONDO",
    "price": 500_000,
    "bedrooms": None,
    "bathrooms": 2.0,
    "square_feet": 1000,
    "event_time": 1_780_000_000_000,
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def avro_round_trip(record: dict) -> dict:
    # The project carries times as int ms: parse as the codec does (time logical types removed).
    schema = parse_for_python(json.loads(SCHEMA_FILE.read_text()))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema, schema, return_record_name=False)


def test_service_record_parses_to_the_market_fields() -> None:
    record = market_record(42, "10001", "CONDO")
    parsed = parse_market_record(json.dumps(record).encode())
    assert set(parsed) == set(MARKET_FIELDS)
    assert parsed["median_price"] == record["median_price"]
    assert isinstance(parsed["market_score"], float)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"median_price": ', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"median_price": 1}', "fields missing"),
    ],
)
def test_malformed_bodies_are_rejected_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_market_record(body)


def test_wrong_field_types_are_rejected_by_name() -> None:
    record = market_record(42, "10001", "CONDO")
    record["median_price"] = "lots"
    record["market_score"] = 250
    with pytest.raises(ValueError, match=r"median_price.*market_score"):
        parse_market_record(json.dumps(record).encode())


def test_enriched_event_keeps_every_input_field_and_matches_the_schema() -> None:
    market = parse_market_record(json.dumps(market_record(42, "10001", "CONDO")).encode())
    event = enriched_event(PAYLOAD, market, None)
    assert event["enrichment_status"] == ENRICHED and event["enrichment_error"] is None
    assert {k: event[k] for k in PAYLOAD} == PAYLOAD
    assert avro_round_trip(event) == event


def test_fallback_event_has_null_market_fields_a_reason_and_matches_the_schema() -> None:
    event = enriched_event(PAYLOAD, None, "MarketDataNotFound: 404")
    assert event["enrichment_status"] == FALLBACK
    assert event["enrichment_error"] == "MarketDataNotFound: 404"
    assert all(event[f] is None for f in MARKET_FIELDS)
    assert avro_round_trip(event) == event


def test_stale_event_has_the_old_market_data_the_reason_and_matches_the_schema() -> None:
    market = parse_market_record(json.dumps(market_record(42, "10001", "CONDO")).encode())
    event = enriched_event(PAYLOAD, market, "MarketDataUnavailable: 503", stale=True)
    assert event["enrichment_status"] == STALE
    assert event["enrichment_error"] == "MarketDataUnavailable: 503"
    assert event["median_price"] == market["median_price"]
    assert avro_round_trip(event) == event


def test_enriched_schema_reads_what_the_contract_schema_wrote() -> None:
    # The enriched record starts with all PropertyEvent fields: same names, same types.
    contract = json.loads(CONTRACT_FILE.read_text())
    enriched = json.loads(SCHEMA_FILE.read_text())
    enriched_fields = {f["name"]: f["type"] for f in enriched["fields"]}
    for field in contract["fields"]:
        assert enriched_fields[field["name"]] == field["type"]
    assert enriched["namespace"] == "property.events"


def test_schema_id_matches_the_catalog() -> None:
    assert ENRICHED_SCHEMA_ID == ENRICHED_PROPERTY_EVENT_ID == 100


def test_cache_key_is_shared_by_all_events_of_a_zip_and_type() -> None:
    assert cache_key(PAYLOAD) == cache_key({**PAYLOAD, "property_id": "other"})
    assert cache_key(PAYLOAD) == "market:10001:CONDO"


def test_breaker_opens_after_k_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10, clock=FakeClock())
    assert breaker.record_failure() is None
    assert breaker.record_failure() is None
    assert breaker.record_success() is None  # a success resets the streak
    assert breaker.record_failure() is None
    assert breaker.record_failure() is None
    assert breaker.record_failure() == OPEN
    assert breaker.allow() == (False, None)


def test_breaker_half_opens_after_the_cooldown_with_a_single_trial_call() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=clock)
    breaker.record_failure()
    clock.now = 9.9
    assert breaker.allow() == (False, None)
    clock.now = 10.0
    assert breaker.allow() == (True, HALF_OPEN)
    assert breaker.allow() == (False, None)  # a second caller while the trial runs
    assert breaker.record_success() == CLOSED
    assert breaker.allow() == (True, None)


def test_failed_trial_reopens_for_another_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now = 5
    assert breaker.allow() == (True, HALF_OPEN)
    assert breaker.record_failure() == OPEN  # one failure is enough in HALF_OPEN
    clock.now = 9
    assert breaker.allow() == (False, None)
    clock.now = 10
    assert breaker.allow() == (True, HALF_OPEN)


def test_only_timeouts_quota_and_unavailability_are_transient() -> None:
    from apache_beam.io.requestresponse import (
        UserCodeExecutionException,
        UserCodeTimeoutException,
    )

    from transforms.enrichment import (
        CircuitOpenError,
        MalformedMarketData,
        MarketDataNotFound,
        MarketDataRateLimited,
        MarketDataUnavailable,
    )

    assert is_transient(UserCodeTimeoutException("beam's own timeout"))
    assert is_transient(MarketDataRateLimited("429", 1.0))
    assert is_transient(MarketDataUnavailable("503"))
    assert not is_transient(MarketDataNotFound("404"))
    assert not is_transient(MalformedMarketData("bad"))
    assert not is_transient(CircuitOpenError("open"))
    assert not is_transient(UserCodeExecutionException("other"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "localhost:8700"}, "base_url must start with http"),
        ({"call_timeout_s": 0}, "call_timeout_s must be > 0"),
        ({"max_retries": -1}, "max_retries must be >= 0"),
        ({"initial_backoff_s": 3, "max_backoff_s": 1}, "initial_backoff_s <= max_backoff_s"),
        ({"failure_threshold": 0}, "failure_threshold must be >= 1"),
        ({"cooldown_s": 0}, "cooldown_s must be > 0"),
    ],
)
def test_bad_arguments_are_rejected_saying_what_to_fix(kwargs: dict, message: str) -> None:
    args = {"base_url": "http://127.0.0.1:8700", **kwargs}
    with pytest.raises(ValueError, match=message):
        EnrichWithMarketData(**args)


def test_bad_cache_arguments_are_rejected_saying_what_to_fix() -> None:
    transform = EnrichWithMarketData("http://127.0.0.1:8700")
    with pytest.raises(ValueError, match="ttl_s must be >= 1"):
        transform.with_redis_cache("127.0.0.1", 6379, ttl_s=0)
    with pytest.raises(ValueError, match="port must be in"):
        transform.with_redis_cache("127.0.0.1", 0)
    with pytest.raises(ValueError, match=r"stale_ttl_s must be 0 \(off\) or longer than ttl_s"):
        transform.with_redis_cache("127.0.0.1", 6379, ttl_s=60, stale_ttl_s=30)


def test_batch_results_are_checked_against_the_keys_asked() -> None:
    keys = [("10001", "CONDO"), ("99999", "LAND")]
    body = {
        "results": [
            {"zip": "10001", "type": "CONDO", "status": 200, "data": {}},
            {"zip": "99999", "type": "LAND", "status": 404, "error": "none"},
        ]
    }
    assert parse_batch_results(json.dumps(body).encode(), keys) == body["results"]
    with pytest.raises(ValueError, match="must hold 2 results"):
        parse_batch_results(json.dumps({"results": body["results"][:1]}).encode(), keys)
    with pytest.raises(ValueError, match="does not answer"):
        parse_batch_results(json.dumps({"results": body["results"][::-1]}).encode(), keys)
    with pytest.raises(ValueError, match="not JSON"):
        parse_batch_results(b'{"results": [', keys)


def test_batch_size_outside_the_service_limit_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"batch_size must be in 1\.\.100"):
        EnrichWithMarketData("http://127.0.0.1:8700", batch_size=101)


class _Flaky(Caller):
    """Fails with ``failure`` ``fail_times`` times, then answers ``(request, "ok")``."""

    def __init__(self, failure: Exception, fail_times: int) -> None:
        self.failure = failure
        self.fail_times = fail_times
        self.calls = 0

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise self.failure
        return request, "ok"


class _FlakyWithFallback(_Flaky):
    def fallback_response(self, request: Any, reason: str, exc: BaseException) -> Any:
        return request, f"fallback: {reason}"


def _repeater(max_retries: int = 2) -> ResilientRepeater:
    policy = ResiliencePolicy(max_retries=max_retries, initial_backoff_s=0, max_backoff_s=0)
    return ResilientRepeater(uuid.uuid4().hex, policy)


def test_repeater_retries_transient_failures_until_an_answer() -> None:
    caller = _FlakyWithFallback(MarketDataUnavailable("503"), fail_times=2)
    assert _repeater().repeat(caller, "r", timeout=5) == ("r", "ok")
    assert caller.calls == 3


def test_repeater_falls_back_through_the_callers_protocol_after_the_last_retry() -> None:
    caller = _FlakyWithFallback(MarketDataUnavailable("503"), fail_times=10)
    request, answer = _repeater().repeat(caller, "r", timeout=5)
    assert (request, answer) == ("r", "fallback: MarketDataUnavailable: 503 (after 3 attempts)")
    assert caller.calls == 3


def test_repeater_does_not_retry_a_permanent_failure() -> None:
    caller = _FlakyWithFallback(MarketDataNotFound("404"), fail_times=10)
    assert _repeater().repeat(caller, "r", timeout=5) == ("r", "fallback: MarketDataNotFound: 404")
    assert caller.calls == 1


def test_repeater_raises_for_a_caller_without_a_fallback_as_beams_repeaters_do() -> None:
    caller = _Flaky(MarketDataUnavailable("503"), fail_times=10)
    with pytest.raises(MarketDataUnavailable, match="503"):
        _repeater(max_retries=1).repeat(caller, "r", timeout=5)
    assert caller.calls == 2


def test_call_with_timeout_turns_an_overrun_into_beams_timeout_exception() -> None:
    class Slow(Caller):
        def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            threading.Event().wait(0.3)
            return request

    with pytest.raises(UserCodeTimeoutException, match=r"no answer within 0\.05 s"):
        call_with_timeout(Slow(), "r", 0.05)
