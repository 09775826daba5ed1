"""Redis as an optional helper of the enrichment: a client that fails fast, the errors that mean
"Redis is out" (and only degrade, never fail a bundle), a rate-limited warning about them, and the
stale store (the last fetched market record of each key, kept longer than the cache entry).

Redis is a cache here, never the source of truth: while it is unreachable a read is a miss and a
write is skipped, and the next command reconnects, so the cache is used again as soon as Redis
answers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from transforms.enrichment.rules import parse_market_record

_LOGGER = logging.getLogger(__name__)

# Connection refused/reset, DNS, socket timeouts (and a server still loading its data set).
REDIS_OUTAGE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
STALE_KEY_PREFIX = "stale:"
# At most one outage warning per this many seconds per process and use ("cache read", ...).
WARNING_INTERVAL_S = 30.0


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis is and how long one command may take before it counts as an outage."""

    host: str
    port: int
    timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must name the Redis server, e.g. 127.0.0.1")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if self.timeout_s <= 0:
            raise ValueError(f"the Redis timeout must be > 0 seconds, got {self.timeout_s}")

    def connect(self) -> redis.Redis:
        """A client that does not connect until its first command and never retries by itself:
        one attempt per command, bounded by ``timeout_s``, so an outage costs one refused
        connection (or one timeout) per command, and the caller decides what a failure means."""
        return redis.Redis(
            self.host,
            self.port,
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), 0),
        )


_WARNED_AT: dict[str, float] = {}
_SUPPRESSED: dict[str, int] = {}
_WARN_LOCK = threading.Lock()


def warn_outage(use: str, address: RedisAddress, exc: BaseException) -> None:
    """Log that Redis failed for ``use``; the first time, then at most once per
    ``WARNING_INTERVAL_S`` per process, saying how many failures were not logged in between."""
    now = time.monotonic()
    with _WARN_LOCK:
        last = _WARNED_AT.get(use)
        if last is not None and now - last < WARNING_INTERVAL_S:
            _SUPPRESSED[use] = _SUPPRESSED.get(use, 0) + 1
            return
        _WARNED_AT[use] = now
        suppressed = _SUPPRESSED.pop(use, 0)
    _LOGGER.warning(
        "Redis %s:%d unavailable for %s, going on without it (%s: %s; %d more since last warning)",
        address.host,
        address.port,
        use,
        type(exc).__name__,
        exc,
        suppressed,
    )


class StaleStore:
    """The last fetched market record of each key (``stale:market:<zip>:<type>``, ``ttl_s``).

    Best effort: an unreachable Redis only costs the stale copy (a warning, never an error).
    Open it with ``open()`` on the thread that owns it; ``close()`` when done.
    """

    def __init__(self, address: RedisAddress, ttl_s: int) -> None:
        self.address = address
        self.ttl_s = ttl_s
        self._client: redis.Redis | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    def open(self) -> None:
        self._client = self.address.connect()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def remember(self, key: str, market: Mapping[str, Any]) -> None:
        if self._client is None:
            return
        try:
            self._client.set(STALE_KEY_PREFIX + key, json.dumps(market), ex=self.ttl_s)
        except redis.RedisError as exc:
            warn_outage("stale copies (write)", self.address, exc)

    def recall(self, key: str) -> dict[str, Any] | None:
        if self._client is None:
            return None
        try:
            cached = self._client.get(STALE_KEY_PREFIX + key)
            return parse_market_record(cached) if cached else None
        except redis.RedisError as exc:
            warn_outage("stale copies (read)", self.address, exc)
        except ValueError as exc:
            _LOGGER.warning("unusable stale copy of %s ignored: %s", key, exc)
        return None
