"""``EnrichWithMarketData``: the composite, built from Beam's public RequestResponseIO (the
handler as caller, the resilient repeater, the outage-proof cache) and a labelled join."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.io.requestresponse import RequestResponseIO
from apache_beam.metrics import Metrics

from transforms.enrichment.cache import MarketDataCache
from transforms.enrichment.handler import MarketDataHandler
from transforms.enrichment.redis_store import RedisAddress, StaleStore
from transforms.enrichment.repeater import ResiliencePolicy, ResilientRepeater
from transforms.enrichment.responses import ERROR_FIELD, STALE_FIELD
from transforms.enrichment.rules import (
    COUNTER_NAMESPACE,
    ENRICHED,
    ENRICHED_SCHEMA_ID,
    FALLBACK,
    MARKET_FIELDS,
    STALE,
    enriched_event,
)
from transforms.types import Decoded


class JoinMarketData:
    """``(Decoded, response row)`` → the enriched ``Decoded`` (schema id 100, same source record).

    Counts ``enriched``, ``stale`` and ``fallbacks``. A callable object rather than a function so
    the counters are created once per worker, not per element.
    """

    def __init__(self) -> None:
        self._counters: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_counters": None}

    def __call__(self, fetched: tuple[Decoded, beam.Row]) -> Decoded:
        request, response = fetched
        if self._counters is None:
            self._counters = {
                ENRICHED: Metrics.counter(COUNTER_NAMESPACE, "enriched"),
                STALE: Metrics.counter(COUNTER_NAMESPACE, "stale"),
                FALLBACK: Metrics.counter(COUNTER_NAMESPACE, "fallbacks"),
            }
        error = getattr(response, ERROR_FIELD, "response without an error field")
        stale = bool(getattr(response, STALE_FIELD, False))
        has_market = error is None or stale
        market = {f: getattr(response, f) for f in MARKET_FIELDS} if has_market else None
        payload = enriched_event(request.payload, market, error, stale=stale)
        self._counters[payload["enrichment_status"]].inc()
        return Decoded(payload=payload, schema_id=ENRICHED_SCHEMA_ID, source=request.source)


class EnrichWithMarketData(beam.PTransform[beam.PCollection[Decoded], beam.PCollection[Decoded]]):
    """Adds the market data of each PropertyEvent's zip code and type; never drops an event.

    Element-wise: the output keeps each input's window and timestamp; no trigger, no lateness.
    See the package docstring for statuses, retries, the circuit breaker, the cache and counters.

    Args:
      base_url: the market-data service, e.g. ``http://127.0.0.1:8700``.
      call_timeout_s: per HTTP call (connect and read), retried while attempts remain.
      max_retries, initial_backoff_s, max_backoff_s: retries of transient failures (timeouts,
        5xx, 429, connection errors) with Beam's exponential backoff; 404 and malformed answers
        are not retried.
      failure_threshold, cooldown_s: the circuit opens after that many consecutive failed calls
        in a worker process and stays open that long, then lets one trial call through.
      circuit_id: which process-wide breaker to use (default: ``base_url``); transforms with the
        same id share one.
      batch_size: 1 calls ``GET /v1/market`` per event; more lets Beam's BatchElements group up
        to that many cache-missing events of a bundle into one ``POST /v1/market/batch`` (each
        distinct key asked once); a 404 or bad record of one key falls back for that key only,
        a failed call for the whole batch. ``calls`` then counts batch calls.
    """

    def __init__(
        self,
        base_url: str,
        *,
        call_timeout_s: float = 2.0,
        max_retries: int = 2,
        initial_backoff_s: float = 0.2,
        max_backoff_s: float = 2.0,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        circuit_id: str | None = None,
        batch_size: int = 1,
    ) -> None:
        super().__init__()
        self._handler = MarketDataHandler(base_url, call_timeout_s, batch_size=batch_size)
        self._policy = ResiliencePolicy(
            max_retries=max_retries,
            initial_backoff_s=initial_backoff_s,
            max_backoff_s=max_backoff_s,
            failure_threshold=failure_threshold,
            cooldown_s=cooldown_s,
        )
        self._circuit_id = circuit_id or self._handler.base_url
        self._market_cache: MarketDataCache | None = None

    def with_redis_cache(
        self,
        host: str,
        port: int,
        ttl_s: int = 3600,
        *,
        not_found_ttl_s: int = 0,
        stale_ttl_s: int = 0,
        timeout_s: float = 1.0,
    ) -> EnrichWithMarketData:
        """Cache market data in Redis at ``host:port`` for ``ttl_s`` seconds (fallbacks never).

        ``not_found_ttl_s`` > 0 also caches the service's "no data for this key" (a 404) that
        long: the events of a zip code and type the vendor does not know then cost a cache read
        instead of an HTTP call each (they still go out FALLBACK with the 404 as their
        ``enrichment_error``), and a key the vendor adds is enriched within that time.

        ``stale_ttl_s`` > 0 turns on stale-on-error: a second copy of every fetched record is
        kept that long, and an event whose call fails (not 404) goes out STALE with it (and the
        failure in ``enrichment_error``) instead of FALLBACK. It must exceed ``ttl_s``: the copy
        is only reached once the cache entry has expired.

        Redis is optional at run time: a command that fails to connect or takes longer than
        ``timeout_s`` counts as a miss (read) or is skipped (write), see ``cache_errors``.
        """
        address = RedisAddress(host, port, timeout_s)
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be >= 1 second, got {ttl_s}")
        if stale_ttl_s and stale_ttl_s <= ttl_s:
            raise ValueError(
                f"stale_ttl_s must be 0 (off) or longer than ttl_s ({ttl_s}), got {stale_ttl_s}"
            )
        self._market_cache = MarketDataCache(address, ttl_s, not_found_ttl_s)
        stale_store = StaleStore(address, stale_ttl_s) if stale_ttl_s else None
        self._handler = self._handler.with_stale_store(stale_store)
        return self

    def expand(self, events: beam.PCollection[Decoded]) -> beam.PCollection[Decoded]:
        fetched = events | "EnrichFromMarketService" >> RequestResponseIO(
            self._handler,
            # Backstop only: the HTTP timeout fires first.
            timeout=self._handler.call_timeout_s + 1.0,
            repeater=ResilientRepeater(self._circuit_id, self._policy),
            cache=self._market_cache,
        )
        return fetched | "JoinMarketData" >> beam.Map(JoinMarketData())
