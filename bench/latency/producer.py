"""The live input producer, in a child process (not on the measured system's GIL): sends each
record once the wall clock reaches its timestamp and returns the send times."""

from __future__ import annotations

import multiprocessing

from bench.latency.config import INPUT_PRODUCER
from tools.simulate import (
    PlannedRecord,
    produce,
)


def _produce_live(
    records: list[PlannedRecord], bootstrap: str, topics: dict[str, str]
) -> list[float]:
    sent: list[float] = []
    produce(
        records,
        bootstrap,
        topics=topics,
        follow_timestamps=True,
        producer_config=INPUT_PRODUCER,
        progress=False,
        timeout_s=300,
        sent_ms=sent,
    )
    return sent


def produce_live(
    records: list[PlannedRecord], bootstrap: str, topics: dict[str, str], span_s: float
) -> list[float]:
    """Produces ``records`` from a spawned process, each once the wall clock reaches its
    timestamp (a live log); returns each record's send time (ms)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        job = pool.apply_async(_produce_live, (records, bootstrap, topics))
        return job.get(timeout=span_s * 3 + 300)
