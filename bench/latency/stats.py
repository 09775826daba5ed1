"""Latency statistics: nearest-rank percentiles, the summary of one path, the p50 trend over
the run (a growing backlog shows as a rising trend) and the CDF the report draws."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from bench.latency.config import QUANTILES


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0 < q ≤ 100) of ascending ``sorted_values``."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile q must be in (0, 100], got {q}")
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def latency_stats(values_ms: Iterable[float]) -> dict[str, Any]:
    """``count``, ``p50``/``p90``/``p99`` (nearest rank) and ``max`` in ms; count 0 when empty."""
    values = sorted(values_ms)
    if not values:
        return {"count": 0}
    stats: dict[str, Any] = {"count": len(values)}
    for q in QUANTILES:
        stats[f"p{q}"] = round(percentile(values, q), 1)
    stats["max"] = round(values[-1], 1)
    return stats


def trend(samples: Iterable[tuple[float, float]], parts: int = 5) -> list[float]:
    """Median latency of each ``parts``-th of the samples ``(input time, latency)`` in input-time
    order: flat when the system keeps up with the rate, rising when a backlog grows."""
    ordered = [latency for _, latency in sorted(samples)]
    if len(ordered) < parts:
        return []
    size = len(ordered) / parts
    return [
        round(percentile(sorted(ordered[int(i * size) : int((i + 1) * size)]), 50), 1)
        for i in range(parts)
    ]


def cdf(values_ms: Iterable[float], points: int = 200) -> list[tuple[float, float]]:
    """At most ``points`` (latency ms, fraction of records at or below it) pairs, ascending."""
    values = sorted(values_ms)
    if not values:
        return []
    n = len(values)
    step = max(1, n // points)
    picked = list(range(step - 1, n, step))
    if picked[-1] != n - 1:
        picked.append(n - 1)
    return [(round(values[i], 1), round((i + 1) / n, 4)) for i in picked]
