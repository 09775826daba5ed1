"""The response of a market-data lookup: a ``beam.Row`` of the market fields plus ``error`` (None
on success), ``stale`` (True when the market data is an old copy served because the call failed)
and ``not_found`` (True when the service answered that it has no data for the key: a 404, a
correct answer rather than a failure). The handler produces it, the cache stores it, the join
reads it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import apache_beam as beam

from transforms.enrichment.rules import MARKET_FIELDS

ERROR_FIELD = "error"
STALE_FIELD = "stale"
NOT_FOUND_FIELD = "not_found"


def market_row(
    market: Mapping[str, Any] | None,
    error: str | None,
    stale: bool = False,
    not_found: bool = False,
) -> beam.Row:
    """The response row of ``market`` (None: null market fields)."""
    values = dict(market) if market is not None else dict.fromkeys(MARKET_FIELDS)
    return beam.Row(
        **values, **{ERROR_FIELD: error, STALE_FIELD: stale, NOT_FOUND_FIELD: not_found}
    )


def fallback_row(reason: str) -> beam.Row:
    """The response that stands for "no market data", with the reason."""
    return market_row(None, reason)


def not_found_row(reason: str) -> beam.Row:
    """The response that stands for "the service has no data for this key" (a 404), with the
    reason: no market data, like a fallback, but an answer worth caching for a short while."""
    return market_row(None, reason, not_found=True)


def is_not_found(row: Any) -> bool:
    """The service's answer was "no data for this key" (``not_found_row``)."""
    return getattr(row, NOT_FOUND_FIELD, False) is True


def row_market(row: beam.Row) -> dict[str, Any]:
    """The market fields of a response row."""
    return {f: getattr(row, f) for f in MARKET_FIELDS}


def is_fresh_market_data(row: Any) -> bool:
    """A successful, fresh answer: the only kind worth caching (a cached failure would hide a
    recovered service for a whole TTL; a cached stale copy would pass for fresh)."""
    return getattr(row, ERROR_FIELD, "no error field") is None


def row_to_json(row: beam.Row) -> bytes:
    """The cache encoding of a row (the JSON object of its fields, as Beam's RedisCache)."""
    return json.dumps(row.as_dict()).encode("utf-8")


def row_from_json(data: bytes) -> beam.Row:
    """The row of a cache value; ValueError when it is not a response row."""
    fields = json.loads(data.decode("utf-8"))
    if not isinstance(fields, dict) or not set(MARKET_FIELDS) | {ERROR_FIELD} <= set(fields):
        raise ValueError(f"not a market-data response: {data[:80]!r}")
    return beam.Row(**fields)
