"""Market-data enrichment that degrades gracefully: ``EnrichWithMarketData``.

Input: ``PCollection[Decoded]`` whose payload is a PropertyEvent dict (contract
``property_event.avsc``). Output: ``PCollection[Decoded]``, one per input, in the same window and
with the same timestamp (enrichment is element-wise: no windowing, trigger or lateness of its own),
whose ``payload`` is an ``EnrichedPropertyEvent`` dict (``schemas/enriched_property_event.avsc``),
``schema_id`` is ``ENRICHED_SCHEMA_ID`` (100) and ``source`` is the input's Kafka record (so a later
stage can key by property_id and still point back at the original offsets).

Every event goes out: ``enrichment_status`` is ``ENRICHED`` with the market data of its
``(zip_code, property_type)``, or ``FALLBACK`` with null market fields and ``enrichment_error``
saying why (unknown zip or type, malformed answer, timeouts/5xx/429/connection errors after
retries, circuit open), or, with stale-on-error on (``with_redis_cache(..., stale_ttl_s=)``),
``STALE`` with the last market data fetched for that key and the failure in ``enrichment_error``.

Modules, each composed from Beam's public API only:
- ``rules``: statuses, keys, parsing a service answer, the enriched record (plain functions).
- ``errors``: the failures, as RequestResponseIO's exception classes; the retry filter.
- ``breaker``: the circuit breaker, one per service and worker process.
- ``responses``: the response row shared by handler, cache and join.
- ``handler``: ``MarketDataHandler``, the HTTP ``EnrichmentSourceHandler`` (single and batch calls).
- ``repeater``: ``ResilientRepeater``, retries + breaker + the caller's fallback.
- ``redis_store``: the Redis client, outage errors and warning, the stale store.
- ``cache``: ``MarketDataCache``, the RequestResponseIO ``Cache`` an outage cannot break.
- ``transform``: ``EnrichWithMarketData`` = ``RequestResponseIO(handler, repeater=, cache=)`` +
  the labelled join.

Counters (namespace ``COUNTER_NAMESPACE``, stable names): ``calls`` (HTTP attempts),
``call_failures`` (attempts that failed, 404 included), ``retries``, ``retry_after_wait_ms``
(time waited honouring a 429's Retry-After, capped at ``max_backoff_s``), ``cache_hits``,
``cache_errors`` (Redis commands of the cache that failed: connection refused, timeout),
``enriched``, ``stale``, ``fallbacks``, ``circuit_rejected`` (requests answered by an open circuit
without a call), ``circuit_opened``, ``circuit_half_opened``, ``circuit_closed``. They are
incremented on the DoFn's thread: RequestResponseIO's calls run on a fresh executor thread, where
metric updates would be lost.
"""

from transforms.enrichment.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    circuit_breaker,
)
from transforms.enrichment.cache import MarketDataCache
from transforms.enrichment.errors import (
    CircuitOpenError,
    MalformedMarketData,
    MarketDataError,
    MarketDataNotFound,
    MarketDataRateLimited,
    MarketDataTimeout,
    MarketDataUnavailable,
    is_transient,
)
from transforms.enrichment.handler import MarketDataHandler
from transforms.enrichment.redis_store import STALE_KEY_PREFIX, RedisAddress, StaleStore
from transforms.enrichment.repeater import (
    FallbackCaller,
    ResiliencePolicy,
    ResilientRepeater,
    call_with_timeout,
)
from transforms.enrichment.responses import ERROR_FIELD, STALE_FIELD, fallback_row
from transforms.enrichment.rules import (
    COUNTER_NAMESPACE,
    ENRICHED,
    ENRICHED_SCHEMA_ID,
    FALLBACK,
    MARKET_FIELDS,
    MAX_BATCH_SIZE,
    STALE,
    cache_key,
    enriched_event,
    market_key,
    parse_batch_results,
    parse_market_record,
    validate_market_record,
)
from transforms.enrichment.transform import EnrichWithMarketData, JoinMarketData

__all__ = [
    "CLOSED",
    "COUNTER_NAMESPACE",
    "ENRICHED",
    "ENRICHED_SCHEMA_ID",
    "ERROR_FIELD",
    "FALLBACK",
    "HALF_OPEN",
    "MARKET_FIELDS",
    "MAX_BATCH_SIZE",
    "OPEN",
    "STALE",
    "STALE_FIELD",
    "STALE_KEY_PREFIX",
    "CircuitBreaker",
    "CircuitOpenError",
    "EnrichWithMarketData",
    "FallbackCaller",
    "JoinMarketData",
    "MalformedMarketData",
    "MarketDataCache",
    "MarketDataError",
    "MarketDataHandler",
    "MarketDataNotFound",
    "MarketDataRateLimited",
    "MarketDataTimeout",
    "MarketDataUnavailable",
    "RedisAddress",
    "ResiliencePolicy",
    "ResilientRepeater",
    "StaleStore",
    "cache_key",
    "call_with_timeout",
    "circuit_breaker",
    "enriched_event",
    "fallback_row",
    "is_transient",
    "market_key",
    "parse_batch_results",
    "parse_market_record",
    "validate_market_record",
]
