"""The benchmarks' Kafka helpers: fresh topics, end offsets, end-of-backfill markers and the
broker append times of output records."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from bench.workload import PARTITIONS


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    append_time: bool = False,
    partitions: int = PARTITIONS,
    replication: int = -1,
) -> None:
    """Fresh topics of ``partitions`` partitions (``replication`` -1: the broker's default)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    config = {"message.timestamp.type": "LogAppendTime"} if append_time else {}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, partitions, replication, config=config) for n in names]
    )
    for future in futures.values():
        future.result(timeout=60)


def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of ``topics``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        out = {}
        for topic in topics:
            for p in range(PARTITIONS):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                out[(topic, p)] = high
        return out
    finally:
        consumer.close()


def mark_end(bootstrap: str, topics: Iterable[str]) -> int:
    """One record stamped "now" in every partition of ``topics``; returns that stop time (a
    bounded Beam read with ``--stop_read_time_ms`` stops before it)."""
    from confluent_kafka import Producer

    stop_ms = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": bootstrap})
    for topic in topics:
        for p in range(PARTITIONS):
            producer.produce(topic, key=b"end", value=b"end", partition=p, timestamp=stop_ms)
    if producer.flush(30):
        raise RuntimeError("could not write the end-of-backfill markers")
    return stop_ms


def append_times(bootstrap: str, topics: Iterable[str], timeout_s: float = 120.0) -> list[int]:
    """First and last broker append time (ms) over every record of ``topics``; [] when empty."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    deadline = time.monotonic() + timeout_s
    first, last = None, None
    try:
        ends = {}
        for topic in topics:
            for p in range(PARTITIONS):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                if high > 0:
                    ends[(topic, p)] = high
        consumer.assign([TopicPartition(t, p, 0) for t, p in ends])
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading append times: {len(ends)} partitions left")
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error():
                    raise RuntimeError(f"reading append times: {msg.error()}")
                ts = msg.timestamp()[1]
                first = ts if first is None else min(first, ts)
                last = ts if last is None else max(last, ts)
                where = (msg.topic(), msg.partition())
                if where in ends and msg.offset() + 1 >= ends[where]:
                    del ends[where]
    finally:
        consumer.close()
    return [] if first is None else [first, last]
