"""Sending a planned log to Kafka: in order, to the planned partitions, with the planned
timestamps, idempotently (so each partition's log holds the planned order)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from tools.delivery import DeliveryReport
from tools.simulate.spec import PlannedRecord

# librdkafka refuses a record above its message.max.bytes (1 000 000 by default) before
# compression; the broker judges the compressed batch against the topic's max.message.bytes.
LIBRDKAFKA_MESSAGE_MAX_BYTES = 1_000_000
FRAMING_BYTES = 4096


def _room_for(records: list[PlannedRecord]) -> dict[str, int]:
    """``message.max.bytes`` large enough for the largest planned record (oversize events),
    when the default is not."""
    largest = max((len(r.key or b"") + len(r.value or b"") for r in records), default=0)
    if largest + FRAMING_BYTES <= LIBRDKAFKA_MESSAGE_MAX_BYTES:
        return {}
    return {"message.max.bytes": largest + FRAMING_BYTES}


def produce(
    records: Iterable[PlannedRecord],
    bootstrap_servers: str,
    *,
    topics: dict[str, str] | None = None,
    rate_per_s: float = 0.0,
    follow_timestamps: bool = False,
    producer_config: dict[str, str] | None = None,
    progress: bool = True,
    timeout_s: float = 120.0,
    sent_ms: list[float] | None = None,
) -> int:
    """Send the records in order, to their planned partitions, with their planned timestamps.

    ``topics`` maps the default topic names to the ones to write (tests use unique topics).
    ``rate_per_s`` > 0 paces the producer; 0 sends as fast as possible. ``follow_timestamps``
    paces it by the records' own timestamps instead: a record is sent once the wall clock has
    reached its timestamp and every earlier record's (a live log whose CreateTime is never after
    its send time, as the contract's producers write it). The producer is idempotent,
    so each partition's log holds the planned order. ``sent_ms``, when given, receives each
    record's wall-clock send time (ms, taken just before it is handed to the client; the latency
    benchmark's input time). Returns the number of records delivered.
    """
    from confluent_kafka import Producer
    from tqdm import tqdm

    records = list(records)
    topics = topics or {}
    conf = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "linger.ms": 20,
        "compression.type": "lz4",
        **_room_for(records),
        **(producer_config or {}),
    }
    producer = Producer(conf)
    report = DeliveryReport()

    started = time.monotonic()
    bar = tqdm(
        total=len(records), unit="rec", desc="produce", disable=not progress, file=sys.stderr
    )
    send_after_ms = 0
    for i, r in enumerate(records):
        if follow_timestamps:
            send_after_ms = max(send_after_ms, r.timestamp_ms)
            wait_s = send_after_ms / 1000 - time.time()
            if wait_s > 0:
                producer.poll(0)
                time.sleep(wait_s)
        if sent_ms is not None:
            sent_ms.append(time.time() * 1000)
        while True:
            try:
                producer.produce(
                    topics.get(r.topic, r.topic),
                    value=r.value,
                    key=r.key,
                    partition=r.partition,
                    timestamp=r.timestamp_ms,
                    on_delivery=report,
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        bar.update(1)
        if rate_per_s > 0:
            ahead = (i + 1) / rate_per_s - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    remaining = producer.flush(timeout_s)
    bar.close()
    if remaining or report.errors:
        raise RuntimeError(
            f"produce: {remaining} records not delivered after {timeout_s}s, "
            f"{len(report.errors)} delivery errors (first: {report.errors[:1]})"
        )
    return report.delivered
