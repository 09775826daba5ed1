"""Reading a finished Beam test pipeline's results: committed counters, dead-letter summaries."""

from __future__ import annotations

from typing import Any

from apache_beam.metrics.metric import MetricsFilter

from transforms import metrics
from transforms.dead_letter import DeadLetter


def counter_totals(result: Any, namespace: str = metrics.NAMESPACE) -> dict[str, int]:
    """Committed value of every counter of ``namespace``, by name (summed over steps)."""
    totals: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + c.committed
    return totals


def counter(result: Any, name: str, namespace: str = metrics.NAMESPACE) -> int:
    """Committed value of one counter (0 when it never incremented)."""
    return counter_totals(result, namespace).get(name, 0)


def letter_summary(letter: DeadLetter) -> tuple[str, str, int, bytes | None]:
    """What a dead-letter test compares: stage, error type, offset and the original bytes."""
    return letter.stage, letter.error_type, letter.offset, letter.value
