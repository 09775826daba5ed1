"""``MarketDataCache``: a RequestResponseIO ``Cache`` in Redis that an outage cannot break.

RequestResponseIO reads the cache before calling the service (``get_read``: request → ``(request,
response or None)``; None is a miss and goes to the call) and writes the calls' responses after
(``get_write``). Here:
- the key is the source caller's ``get_cache_key`` (``market:<zip>:<type>``), the value the JSON
  object of the response row (Beam's RedisCache encoding), written with ``SET NX EX ttl``;
- fresh market data is written for ``ttl_s``; the service's "no data for this key" (a 404,
  ``not_found_row``) for ``not_found_ttl_s`` (0: never), so that the events of a key the vendor
  does not know cost a cache read, not an HTTP call each, and a key the vendor adds is seen
  within that time; nothing else is written: a cached failure would hide a recovered service for
  a whole TTL, a cached stale copy would pass for fresh;
- a Redis that is down or hung (connection refused, timeout) makes a read a miss and a write a
  no-op, counted in ``cache_errors`` with a rate-limited warning, never a failed bundle; the next
  command reconnects, so the cache is used again as soon as Redis answers;
- ``cache_hits`` counts reads answered by the cache, ``cache_not_found_hits`` those of them
  that were a cached "no data for this key".

Reads and writes are plain DoFns, one Redis command per element on the DoFn's thread: the counters
are exact, and no executor thread per element is paid (loopback Redis answers faster than a thread
starts).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import apache_beam as beam
import redis
from apache_beam.coders import coders
from apache_beam.io.requestresponse import Cache, Caller
from apache_beam.metrics import Metrics

from transforms.enrichment.redis_store import REDIS_OUTAGE, RedisAddress, warn_outage
from transforms.enrichment.responses import (
    is_fresh_market_data,
    is_not_found,
    row_from_json,
    row_to_json,
)
from transforms.enrichment.rules import COUNTER_NAMESPACE

_LOGGER = logging.getLogger(__name__)


class _RedisDoFn(beam.DoFn):
    """A DoFn holding one Redis client (opened in ``setup``) and the cache counters."""

    def __init__(self, address: RedisAddress, caller: Caller) -> None:
        self._address = address
        self._caller = caller
        self._client: redis.Redis | None = None

    def setup(self) -> None:
        self._client = self._address.connect()
        self._errors = Metrics.counter(COUNTER_NAMESPACE, "cache_errors")
        self._hits = Metrics.counter(COUNTER_NAMESPACE, "cache_hits")
        self._not_found_hits = Metrics.counter(COUNTER_NAMESPACE, "cache_not_found_hits")

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _key(self, request: Any) -> str:
        key = self._caller.get_cache_key(request)
        if not key:
            raise ValueError(f"{self._caller} gives no cache key for {request!r}")
        return str(key)

    def _outage(self, use: str, exc: Exception) -> None:
        self._errors.inc()
        warn_outage(use, self._address, exc)


class _ReadFn(_RedisDoFn):
    def process(self, request: Any) -> Iterator[tuple[Any, Any]]:
        assert self._client is not None
        key = self._key(request)
        try:
            cached = self._client.get(key)
        except REDIS_OUTAGE as exc:
            self._outage("the market-data cache (read)", exc)
            yield request, None
            return
        if cached is None:
            yield request, None
            return
        try:
            row = row_from_json(cached)
        except ValueError as exc:
            _LOGGER.warning("unusable cache entry %s read as a miss: %s", key, exc)
            yield request, None
            return
        self._hits.inc()
        if is_not_found(row):
            self._not_found_hits.inc()
        yield request, row


class _WriteFn(_RedisDoFn):
    def __init__(
        self, address: RedisAddress, caller: Caller, ttl_s: int, not_found_ttl_s: int
    ) -> None:
        super().__init__(address, caller)
        self._ttl_s = ttl_s
        self._not_found_ttl_s = not_found_ttl_s

    def _ttl_of(self, response: Any) -> int:
        """How long ``response`` may be cached, 0 for never."""
        if is_fresh_market_data(response):
            return self._ttl_s
        return self._not_found_ttl_s if is_not_found(response) else 0

    def process(self, element: tuple[Any, Any]) -> Iterator[tuple[Any, Any]]:
        assert self._client is not None
        request, response = element
        ttl_s = self._ttl_of(response)
        if not ttl_s:
            return
        try:
            self._client.set(self._key(request), row_to_json(response), ex=ttl_s, nx=True)
        except REDIS_OUTAGE as exc:
            self._outage("the market-data cache (write)", exc)
            return
        yield element


class ReadMarketDataCache(beam.PTransform):
    """request → ``(request, cached response row)``, or ``(request, None)`` on a miss."""

    def __init__(self, address: RedisAddress, caller: Caller) -> None:
        super().__init__()
        self._fn = _ReadFn(address, caller)

    def expand(self, requests_: beam.PCollection) -> beam.PCollection:
        return requests_ | "ReadRedis" >> beam.ParDo(self._fn)


class WriteMarketDataCache(beam.PTransform):
    """``(request, response row)`` → written when fresh market data (for ``ttl_s``) or the
    service's "no data for this key" (for ``not_found_ttl_s``, 0: never); out: what was
    written."""

    def __init__(
        self, address: RedisAddress, caller: Caller, ttl_s: int, not_found_ttl_s: int = 0
    ) -> None:
        super().__init__()
        self._fn = _WriteFn(address, caller, ttl_s, not_found_ttl_s)

    def expand(self, responses: beam.PCollection) -> beam.PCollection:
        return responses | "WriteRedis" >> beam.ParDo(self._fn)


class MarketDataCache(Cache):
    """The cache of ``RequestResponseIO(caller, cache=MarketDataCache(...))``; see the module
    docstring. ``ttl_s``: how long market data lives; ``not_found_ttl_s``: how long the service's
    "no data for this key" does (0: not cached)."""

    def __init__(
        self, address: RedisAddress, ttl_s: int | timedelta, not_found_ttl_s: int = 0
    ) -> None:
        ttl = int(ttl_s.total_seconds()) if isinstance(ttl_s, timedelta) else ttl_s
        if ttl < 1:
            raise ValueError(f"ttl_s must be >= 1 second, got {ttl_s}")
        if not_found_ttl_s < 0:
            raise ValueError(f"not_found_ttl_s must be >= 0 (0: off), got {not_found_ttl_s}")
        self.address = address
        self.ttl_s = ttl
        self.not_found_ttl_s = not_found_ttl_s
        self._source_caller: Caller | None = None
        self._request_coder: coders.Coder | None = None

    def _caller(self) -> Caller:
        if self._source_caller is None:
            raise ValueError(
                "MarketDataCache needs its source caller: pass it to RequestResponseIO"
            )
        return self._source_caller

    def get_read(self) -> beam.PTransform:
        return ReadMarketDataCache(self.address, self._caller())

    def get_write(self) -> beam.PTransform:
        return WriteMarketDataCache(self.address, self._caller(), self.ttl_s, self.not_found_ttl_s)

    @property
    def source_caller(self) -> Caller | None:
        return self._source_caller

    @source_caller.setter
    def source_caller(self, caller: Caller) -> None:
        self._source_caller = caller

    # The key is the source caller's get_cache_key (a str): no request coder is needed. The
    # property exists because Cache declares it.
    @property
    def request_coder(self) -> coders.Coder | None:
        return self._request_coder

    @request_coder.setter
    def request_coder(self, request_coder: coders.Coder) -> None:
        self._request_coder = request_coder
