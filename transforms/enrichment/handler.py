"""``MarketDataHandler``: the HTTP lookup of a PropertyEvent's market data, as a Beam
``EnrichmentSourceHandler`` (a RequestResponseIO ``Caller``).

Like Beam's own handlers it opens its client in ``__enter__`` (one ``requests.Session`` per DoFn
instance, so connections are kept alive), answers in ``__call__`` and closes in ``__exit__``.
``__call__`` returns ``(request, response row)`` (see ``responses``) or raises the exceptions of
``errors``: 429 → ``MarketDataRateLimited`` (with Retry-After), timeout → ``MarketDataTimeout``,
5xx and connection errors → ``MarketDataUnavailable``, 404 → ``MarketDataNotFound``, a malformed
body → ``MalformedMarketData``.

With ``batch_size`` > 1 RequestResponseIO groups cache-missing requests with Beam's
BatchElements and ``__call__`` gets a list: one ``POST /v1/market/batch`` for its distinct keys;
a 404 or malformed record of one key falls back for that key only.

``fallback_response`` (the repeater's fallback protocol) says what stands in for a failed call:
the stale copy of the key when a ``StaleStore`` is set and holds one (never for a 404), else a
fallback row carrying the reason (for a 404: the not-found row, which the cache may keep).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam
import requests
from apache_beam.transforms.enrichment import EnrichmentSourceHandler

from transforms.enrichment.errors import (
    MalformedMarketData,
    MarketDataError,
    MarketDataNotFound,
    MarketDataRateLimited,
    MarketDataTimeout,
    MarketDataUnavailable,
)
from transforms.enrichment.redis_store import StaleStore
from transforms.enrichment.responses import fallback_row, market_row, not_found_row
from transforms.enrichment.rules import (
    MAX_BATCH_SIZE,
    cache_key,
    market_key,
    parse_batch_results,
    parse_market_record,
    validate_market_record,
)
from transforms.types import Decoded

Response = tuple[Decoded, beam.Row]


def _retry_after_s(response: requests.Response) -> float | None:
    """The Retry-After header in seconds (the delay-seconds form; an HTTP date is ignored)."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class MarketDataHandler(EnrichmentSourceHandler[Decoded, Response]):
    """Calls ``GET {base_url}/v1/market?zip=&type=`` for a ``Decoded`` PropertyEvent (or the batch
    endpoint for a list of them); see the module docstring."""

    def __init__(
        self,
        base_url: str,
        call_timeout_s: float,
        stale_store: StaleStore | None = None,
        batch_size: int = 1,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be in 1..{MAX_BATCH_SIZE}, got {batch_size}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if call_timeout_s <= 0:
            raise ValueError(f"call_timeout_s must be > 0, got {call_timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.call_timeout_s = call_timeout_s
        self.stale_store = stale_store
        self.batch_size = batch_size
        self._session: requests.Session | None = None

    def with_stale_store(self, stale_store: StaleStore | None) -> MarketDataHandler:
        """A copy of this handler that keeps and serves stale copies in ``stale_store``."""
        return MarketDataHandler(self.base_url, self.call_timeout_s, stale_store, self.batch_size)

    def __enter__(self) -> MarketDataHandler:
        self._session = requests.Session()
        if self.stale_store is not None:
            self.stale_store.open()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self.stale_store is not None:
            self.stale_store.close()

    def __str__(self) -> str:
        # RequestResponseIO names its metrics namespace after str(caller): keep it stable.
        return "MarketDataHandler"

    def __getstate__(self) -> dict[str, Any]:
        # A session is per process; pickle the configuration only.
        return {**self.__dict__, "_session": None}

    def get_cache_key(self, request: Decoded) -> str:
        return cache_key(request.payload)

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        # Not empty: RequestResponseIO batches the (cache-missing) requests with BatchElements
        # and hands __call__ a list.
        if self.batch_size == 1:
            return {}
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if self._session is None:
            raise RuntimeError("MarketDataHandler used outside `with`: __enter__ opens its client")
        if isinstance(request, list):
            return self._call_batch(request)
        return self._call_one(request)

    def fallback_response(self, request: Any, reason: str, exc: BaseException) -> Any:
        """What stands in for a call of ``request`` (one or a batch) that failed with ``exc``."""
        if isinstance(request, list):
            return [self.fallback_response(r, reason, exc) for r in request]
        if isinstance(exc, MarketDataNotFound):
            return request, not_found_row(reason)
        if self.stale_store is not None:
            market = self.stale_store.recall(cache_key(request.payload))
            if market is not None:
                return request, market_row(market, reason, stale=True)
        return request, fallback_row(reason)

    def _found(self, request: Decoded, market: Mapping[str, Any]) -> Response:
        if self.stale_store is not None:
            self.stale_store.remember(cache_key(request.payload), market)
        return request, market_row(market, None)

    def _raise_for_status(self, response: requests.Response, what: str) -> None:
        status = response.status_code
        if status == 200:
            return
        if status == 404:
            raise MarketDataNotFound(f"404: no market data for {what}")
        if status == 429:
            raise MarketDataRateLimited("429: rate limited", _retry_after_s(response))
        if status >= 500:
            raise MarketDataUnavailable(f"{status}: {response.text[:120]}")
        raise MarketDataError(f"unexpected status {status}: {response.text[:120]}")

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        assert self._session is not None
        try:
            return self._session.request(
                method, f"{self.base_url}{path}", timeout=self.call_timeout_s, **kwargs
            )
        except requests.Timeout as exc:
            raise MarketDataTimeout(f"no answer within {self.call_timeout_s} s") from exc
        except requests.RequestException as exc:
            raise MarketDataUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _call_one(self, request: Decoded) -> Response:
        zip_code, property_type = market_key(request.payload)
        response = self._send("GET", "/v1/market", params={"zip": zip_code, "type": property_type})
        self._raise_for_status(response, f"zip={zip_code} type={property_type}")
        try:
            market = parse_market_record(response.content)
        except ValueError as exc:
            raise MalformedMarketData(f"malformed answer: {exc}") from exc
        return self._found(request, market)

    def _call_batch(self, requests_: list[Decoded]) -> list[Response]:
        """One POST for the distinct keys of ``requests_``; a 404 or a malformed record of one
        key falls back for that key only (a failure of the whole call raises as a single call
        would)."""
        keys = list(dict.fromkeys(market_key(r.payload) for r in requests_))
        response = self._send(
            "POST", "/v1/market/batch", json={"keys": [{"zip": z, "type": t} for z, t in keys]}
        )
        self._raise_for_status(response, f"batch of {len(keys)} keys")
        try:
            results = parse_batch_results(response.content, keys)
        except ValueError as exc:
            raise MalformedMarketData(f"malformed batch answer: {exc}") from exc
        markets: dict[tuple[str, str], dict[str, Any]] = {}
        failures: dict[tuple[str, str], MarketDataError] = {}
        for (zip_code, property_type), result in zip(keys, results, strict=True):
            key = (zip_code, property_type)
            if result.get("status") == 404:
                failures[key] = MarketDataNotFound(
                    f"404: no market data for zip={zip_code} type={property_type}"
                )
                continue
            try:
                if result.get("status") != 200:
                    raise ValueError(f"item status {result.get('status')!r}")
                markets[key] = validate_market_record(result.get("data"))
            except ValueError as exc:
                failures[key] = MalformedMarketData(f"malformed answer: {exc}")
        out = []
        for request in requests_:
            key = market_key(request.payload)
            if key in markets:
                out.append(self._found(request, markets[key]))
            else:
                exc = failures[key]
                out.append(self.fallback_response(request, f"{type(exc).__name__}: {exc}", exc))
        return out
