"""The plain rules of the enrichment (no Beam): statuses, request keys, parsing a service answer,
and building the EnrichedPropertyEvent (``schemas/enriched_property_event.avsc``)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from schemas.contract import ENRICHED_SCHEMA_ID  # noqa: F401 (re-exported)

ENRICHED = "ENRICHED"
FALLBACK = "FALLBACK"
STALE = "STALE"
COUNTER_NAMESPACE = "enrichment.market_data"

MARKET_FIELDS: tuple[str, ...] = (
    "median_price",
    "price_trend_30d",
    "price_trend_90d",
    "days_on_market",
    "inventory",
    "comparable_properties",
    "market_score",
)
# The service's batch endpoint takes at most this many keys.
MAX_BATCH_SIZE = 100

_NUMBER = (int, float)


def market_key(payload: Mapping[str, Any]) -> tuple[str, str]:
    """The lookup key of a PropertyEvent: ``(zip_code, property_type)``."""
    return str(payload["zip_code"]), str(payload["property_type"])


def cache_key(payload: Mapping[str, Any]) -> str:
    """The Redis key of an event's market data, shared by all events of a zip code and type."""
    zip_code, property_type = market_key(payload)
    return f"market:{zip_code}:{property_type}"


def parse_market_record(body: bytes) -> dict[str, Any]:
    """The market fields of a service answer; ValueError saying what is wrong otherwise."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"body is not JSON ({exc}): {body[:80]!r}") from exc
    return validate_market_record(data)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_comparables(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(c, dict)
        and isinstance(c.get("property_id"), str)
        and isinstance(c.get("price"), int)
        for c in v
    )


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "median_price": _is_count,
    "price_trend_30d": lambda v: isinstance(v, _NUMBER) and math.isfinite(v),
    "price_trend_90d": lambda v: isinstance(v, _NUMBER) and math.isfinite(v),
    "days_on_market": _is_count,
    "inventory": _is_count,
    "market_score": lambda v: isinstance(v, _NUMBER) and 0 <= v <= 100,
    "comparable_properties": _is_comparables,
}


def validate_market_record(data: Any) -> dict[str, Any]:
    """The market fields of a decoded JSON record; ValueError saying what is wrong otherwise."""
    if not isinstance(data, dict):
        raise ValueError(f"record is not a JSON object: {str(data)[:80]!r}")
    missing = [f for f in MARKET_FIELDS if f not in data]
    if missing:
        raise ValueError(f"fields missing: {missing}")
    bad = [f for f, ok in _CHECKS.items() if not ok(data[f])]
    if bad:
        raise ValueError(f"fields with bad values: {bad}")
    record = {f: data[f] for f in MARKET_FIELDS}
    record["price_trend_30d"] = float(record["price_trend_30d"])
    record["price_trend_90d"] = float(record["price_trend_90d"])
    record["market_score"] = float(record["market_score"])
    record["comparable_properties"] = [
        {"property_id": c["property_id"], "price": c["price"]}
        for c in record["comparable_properties"]
    ]
    return record


def parse_batch_results(body: bytes, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The per-key results of a batch answer, checked against the ``keys`` asked, in order.

    Each result is ``{"status": 200, "data": {...}}`` or ``{"status": <other>, "error": ...}``;
    ValueError when the body as a whole is unusable (not JSON, wrong length, keys out of order).
    """
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"batch body is not JSON ({exc}): {body[:80]!r}") from exc
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or len(results) != len(keys):
        raise ValueError(f"batch body must hold {len(keys)} results: {body[:80]!r}")
    for key, result in zip(keys, results, strict=True):
        answered = (result.get("zip"), result.get("type")) if isinstance(result, dict) else None
        if answered != key:
            raise ValueError(f"batch result {str(result)[:80]!r} does not answer {key}")
    return results


def enriched_event(
    payload: Mapping[str, Any],
    market: Mapping[str, Any] | None,
    error: str | None,
    *,
    stale: bool = False,
) -> dict[str, Any]:
    """The EnrichedPropertyEvent of ``payload``: ENRICHED with ``market``; STALE with an old
    ``market`` and the ``error`` that prevented a fresh one; else FALLBACK with the ``error``."""
    event = dict(payload)
    if market is not None and (error is None or stale):
        event.update({f: market[f] for f in MARKET_FIELDS})
        event["enrichment_status"] = STALE if stale else ENRICHED
        event["enrichment_error"] = error if stale else None
    else:
        event.update(dict.fromkeys(MARKET_FIELDS))
        event["enrichment_status"] = FALLBACK
        event["enrichment_error"] = error or "no market data"
    return event
