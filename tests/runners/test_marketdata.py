"""The market-data service as a real process: data, 404s, fault injection, statistics.

Every test here starts the service (a process of the stack), hence ``integration``; the dataset
alone is tested in ``test_marketdata_dataset.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from runners.marketdata.dataset import market_record
from runners.marketdata.processes import MarketDataServer, market_data_server

# The fields the pipeline reads from a response (what the service must serve).
from transforms.enrichment import MARKET_FIELDS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def running_server() -> Iterator[MarketDataServer]:
    with market_data_server() as server:
        yield server


@pytest.fixture
def server(running_server: MarketDataServer) -> MarketDataServer:
    running_server.reset()
    return running_server


def get_market(server: MarketDataServer, zip_code: str, ptype: str) -> requests.Response:
    return requests.get(
        f"{server.url}/v1/market", params={"zip": zip_code, "type": ptype}, timeout=5
    )


def test_known_zip_and_type_answers_the_seeded_record(server: MarketDataServer) -> None:
    response = get_market(server, "10042", "TOWNHOUSE")
    assert response.status_code == 200
    body = response.json()
    assert body == market_record(42, "10042", "TOWNHOUSE")
    assert set(body) >= set(MARKET_FIELDS)


@pytest.mark.parametrize(("zip_code", "ptype"), [("99999", "CONDO"), ("10001", "CASTLE")])
def test_unknown_zip_or_type_is_404_with_a_reason(
    server: MarketDataServer, zip_code: str, ptype: str
) -> None:
    response = get_market(server, zip_code, ptype)
    assert response.status_code == 404
    assert "no market data" in response.json()["error"]


def test_missing_parameter_is_400(server: MarketDataServer) -> None:
    response = requests.get(f"{server.url}/v1/market", params={"zip": "10001"}, timeout=5)
    assert response.status_code == 400


def test_healthz_stays_up_while_the_api_is_down(server: MarketDataServer) -> None:
    server.set_faults(down=True)
    assert get_market(server, "10001", "CONDO").status_code == 503
    health = requests.get(f"{server.url}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["faults"]["down"] is True


def test_injected_latency_delays_the_answer(server: MarketDataServer) -> None:
    server.set_faults(latency_ms=300)
    started = time.monotonic()
    assert get_market(server, "10001", "CONDO").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_error_rate_one_answers_500_and_zero_answers_200(server: MarketDataServer) -> None:
    server.set_faults(error_rate=1.0)
    assert {get_market(server, "10001", "CONDO").status_code for _ in range(5)} == {500}
    server.set_faults(error_rate=0.0)
    assert get_market(server, "10001", "CONDO").status_code == 200


def test_error_rate_half_fails_about_half_the_requests(server: MarketDataServer) -> None:
    server.set_faults(error_rate=0.5)
    codes = [get_market(server, "10001", "CONDO").status_code for _ in range(200)]
    assert 60 <= codes.count(500) <= 140


def test_rate_limit_zero_answers_429_with_retry_after(server: MarketDataServer) -> None:
    server.set_faults(rate_limit_rps=0, retry_after_s=3)
    response = get_market(server, "10001", "CONDO")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"


def test_rate_limit_lets_the_rate_through_and_limits_a_burst(server: MarketDataServer) -> None:
    server.set_faults(rate_limit_rps=5)
    codes = [get_market(server, "10001", "CONDO").status_code for _ in range(20)]
    assert codes[:5] == [200] * 5
    assert 429 in codes


def test_malformed_rate_one_answers_200_with_a_body_that_is_not_json(
    server: MarketDataServer,
) -> None:
    server.set_faults(malformed_rate=1.0)
    response = get_market(server, "10001", "CONDO")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_unknown_or_invalid_fault_fields_are_rejected_and_leave_faults_unchanged(
    server: MarketDataServer,
) -> None:
    bad_field = requests.post(f"{server.url}/admin/faults", json={"explode": True}, timeout=5)
    bad_value = requests.post(f"{server.url}/admin/faults", json={"error_rate": 2}, timeout=5)
    assert bad_field.status_code == 422 and "unknown fault fields" in bad_field.json()["error"]
    assert bad_value.status_code == 422 and "error_rate" in bad_value.json()["error"]
    assert get_market(server, "10001", "CONDO").status_code == 200


def test_stats_count_every_api_request_by_status(server: MarketDataServer) -> None:
    get_market(server, "10001", "CONDO")
    get_market(server, "10001", "CONDO")
    get_market(server, "99999", "CONDO")
    stats = server.stats()
    assert stats == {"market_requests": 3, "by_status": {"200": 2, "404": 1}}


def test_a_request_answered_after_a_reset_counts_in_no_period(server: MarketDataServer) -> None:
    """A slow call that arrived before a reset (a client gave up on it) and is answered after it
    must not be counted in the new period: that leak made exact request counts flaky."""
    server.set_faults(latency_ms=1500)
    with pytest.raises(requests.Timeout):
        requests.get(
            f"{server.url}/v1/market", params={"zip": "10001", "type": "CONDO"}, timeout=0.2
        )
    server.reset()
    assert get_market(server, "10002", "CONDO").status_code == 200
    time.sleep(1.6)  # the abandoned call has been answered by now
    assert server.stats() == {"market_requests": 1, "by_status": {"200": 1}}


def test_stats_wait_for_calls_still_in_flight(server: MarketDataServer) -> None:
    """A call whose client timed out still counts once the server answers it: the statistics
    are read only when nothing is in flight, so server and client count the same calls."""
    server.set_faults(latency_ms=800)
    with pytest.raises(requests.Timeout):
        requests.get(
            f"{server.url}/v1/market", params={"zip": "10001", "type": "CONDO"}, timeout=0.1
        )
    assert server.stats() == {"market_requests": 1, "by_status": {"200": 1}}


def test_reset_reseeds_the_fault_draws(server: MarketDataServer) -> None:
    def draws() -> list[int]:
        server.set_faults(error_rate=0.5)
        return [get_market(server, "10001", "CONDO").status_code for _ in range(20)]

    first = draws()
    server.reset()
    assert draws() == first
    assert set(first) == {200, 500}


def test_cli_flags_set_the_initial_faults() -> None:
    with market_data_server("--down", "--latency-ms", "10") as server:
        assert get_market(server, "10001", "CONDO").status_code == 503
        assert server.set_faults()["latency_ms"] == 10


def test_invalid_cli_flag_value_exits_with_a_message() -> None:
    with (
        pytest.raises(RuntimeError, match="error_rate must be"),
        market_data_server("--error-rate", "3"),
    ):
        pass


def post_batch(server: MarketDataServer, keys: list[dict]) -> requests.Response:
    return requests.post(f"{server.url}/v1/market/batch", json={"keys": keys}, timeout=5)


def test_batch_answers_each_key_in_order_with_its_record_or_a_404(
    server: MarketDataServer,
) -> None:
    keys = [{"zip": "10001", "type": "CONDO"}, {"zip": "99999", "type": "LAND"}]
    response = post_batch(server, keys)
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first == {
        "zip": "10001",
        "type": "CONDO",
        "status": 200,
        "data": market_record(42, "10001", "CONDO"),
    }
    assert second["status"] == 404 and "no market data" in second["error"]
    assert server.stats() == {"market_requests": 1, "by_status": {"200": 1}}


@pytest.mark.parametrize("body", [{}, {"keys": []}, {"keys": [{"zip": "10001"}]}])
def test_batch_with_a_bad_body_is_400(server: MarketDataServer, body: dict) -> None:
    response = requests.post(f"{server.url}/v1/market/batch", json=body, timeout=5)
    assert response.status_code == 400


def test_batch_faults_apply_once_per_request(server: MarketDataServer) -> None:
    server.set_faults(down=True)
    assert post_batch(server, [{"zip": "10001", "type": "CONDO"}] * 5).status_code == 503
    server.set_faults(down=False, rate_limit_rps=0)
    assert post_batch(server, [{"zip": "10001", "type": "CONDO"}]).status_code == 429
    server.set_faults(rate_limit_rps=None, malformed_rate=1.0)
    with pytest.raises(ValueError):
        post_batch(server, [{"zip": "10001", "type": "CONDO"}]).json()
    assert server.stats()["market_requests"] == 3
