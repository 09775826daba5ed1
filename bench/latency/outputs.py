"""Output records read back with their broker append times, and the waits on output topics
(a count reached, the outputs quiet)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence

from bench.kafka_config import client_conf
from bench.latency.causes import TimedOutput
from bench.workload import (
    PARTITIONS,
)
from pipelines.options import PropertyTopics
from pipelines.property import OUTPUT_SPECS
from transforms.codec import decode_record

LOG = logging.getLogger("bench.latency")


def output_sizes(bootstrap: str, topics: Iterable[str]) -> int:
    """Records now in ``topics`` (sum of high watermarks; fresh topics start at offset 0)."""
    from bench.kafka_io import end_offsets

    return sum(end_offsets(bootstrap, topics).values())


def read_timed(bootstrap: str, topic: str, schema: str, timeout_s: float) -> list[TimedOutput]:
    """Every record now in ``topic`` as (append time ms, decoded value), partition by partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        client_conf(
            bootstrap, settings={"group.id": f"lat-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
    )
    deadline = time.monotonic() + timeout_s
    out: list[TimedOutput] = []
    try:
        ends = {}
        for p in range(PARTITIONS):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > 0:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: {len(ends)} partitions left")
            for msg in consumer.consume(5_000, timeout=0.5):
                if msg.error():
                    raise RuntimeError(f"reading {topic}: {msg.error()}")
                p = msg.partition()
                if p in ends and msg.offset() < ends[p]:
                    out.append((msg.timestamp()[1], decode_record(msg.value(), schema)[1]))
                if p in ends and msg.offset() + 1 >= ends[p]:
                    del ends[p]
    finally:
        consumer.close()
    return out


def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Deletes a finished run's topics: the private broker restarts faster with fewer logs."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_conf(bootstrap))  # alive until the futures resolve
    for name, future in admin.delete_topics(list(names), operation_timeout=30).items():
        try:
            future.result(timeout=60)
        except Exception as exc:  # a leftover topic harms no later run
            LOG.warning("could not delete %s: %s", name, exc)


def read_all_timed(bootstrap: str, topics: PropertyTopics) -> dict[str, list[TimedOutput]]:
    return {
        name: read_timed(bootstrap, getattr(topics, spec.topic_field), spec.schema, 600)
        for name, spec in OUTPUT_SPECS.items()
    }


def wait_for_count(bootstrap: str, topic: str, at_least: int, timeout_s: float) -> float:
    """Seconds until ``topic`` holds ``at_least`` records; TimeoutError after ``timeout_s``."""
    started = time.monotonic()
    while output_sizes(bootstrap, [topic]) < at_least:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{topic}: fewer than {at_least} records after {timeout_s:.0f} s")
        time.sleep(1)
    return time.monotonic() - started


def wait_quiet(bootstrap: str, topics: Sequence[str], quiet_s: float, timeout_s: float) -> float:
    """Waits until ``topics`` stop growing for ``quiet_s`` (bounded); returns seconds waited."""
    started = time.monotonic()
    last, since = -1, time.monotonic()
    while time.monotonic() - started < timeout_s:
        size = output_sizes(bootstrap, topics)
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(1)
    return time.monotonic() - started
