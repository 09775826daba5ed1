"""The benchmarks' Kafka helpers: fresh topics, end offsets, end-of-backfill markers and the
broker append times of output records. ``security``: librdkafka security settings
(``bench.kafka_config.security_settings``; None against a plaintext broker)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping

from bench.kafka_config import client_conf
from bench.workload import PARTITIONS


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    append_time: bool = False,
    partitions: int = PARTITIONS,
    replication: int = -1,
    security: Mapping[str, str] | None = None,
) -> None:
    """Fresh topics of ``partitions`` partitions (``replication`` -1: the broker's default)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    config = {"message.timestamp.type": "LogAppendTime"} if append_time else {}
    admin = AdminClient(client_conf(bootstrap, security))
    futures = admin.create_topics(
        [NewTopic(n, partitions, replication, config=config) for n in names]
    )
    for future in futures.values():
        future.result(timeout=60)


def end_offsets(
    bootstrap: str, topics: Iterable[str], security: Mapping[str, str] | None = None
) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of ``topics``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(client_conf(bootstrap, security, {"group.id": f"bench-{uuid.uuid4().hex}"}))
    try:
        out = {}
        for topic in topics:
            for p in range(PARTITIONS):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                out[(topic, p)] = high
        return out
    finally:
        consumer.close()


def mark_end(
    bootstrap: str, topics: Iterable[str], security: Mapping[str, str] | None = None
) -> int:
    """One record stamped "now" in every partition of ``topics``; returns that stop time (a
    bounded Beam read with ``--stop_read_time_ms`` stops before it). ``RuntimeError`` naming the
    broker's error when a marker is not acknowledged (e.g. no WRITE ACL)."""
    from confluent_kafka import Producer

    stop_ms = int(time.time() * 1000)
    producer = Producer(client_conf(bootstrap, security))
    refused: list[str] = []

    def delivered(err, msg) -> None:
        if err is not None:
            refused.append(f"{msg.topic()}[{msg.partition()}]: {err.name()}")

    for topic in topics:
        for p in range(PARTITIONS):
            producer.produce(
                topic,
                key=b"end",
                value=b"end",
                partition=p,
                timestamp=stop_ms,
                on_delivery=delivered,
            )
    if producer.flush(30) or refused:
        raise RuntimeError(f"could not write the end-of-backfill markers: {refused or 'timeout'}")
    return stop_ms


def append_times(
    bootstrap: str,
    topics: Iterable[str],
    timeout_s: float = 120.0,
    security: Mapping[str, str] | None = None,
) -> list[int]:
    """First and last broker append time (ms) over every record of ``topics``; [] when empty."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        client_conf(
            bootstrap,
            security,
            {"group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False},
        )
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
