"""The DLQ tool's Kafka I/O: reading the whole dead-letter topic (bounded), checking replay
targets, and sending a replay plan through an idempotent producer."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from tools.delivery import DeliveryReport
from tools.dlq.model import (
    DEFAULT_DLQ_TOPIC,
    SCHEMA,
    DlqContents,
    DlqEntry,
    ReplayRecord,
    Unreadable,
    replay_targets,
)
from transforms.codec import DecodeError, decode_record
from transforms.dead_letter import DeadLetter

# --- Kafka I/O ----------------------------------------------------------------------------------


class DlqError(RuntimeError):
    """The dead-letter topic or a replay target cannot be used (missing topic, partition, ...)."""


def _remaining(deadline: float) -> float:
    return max(1.0, deadline - time.monotonic())


def read_dlq(
    bootstrap_servers: str,
    topic: str = DEFAULT_DLQ_TOPIC,
    *,
    timeout_s: float = 60.0,
    consumer_config: Mapping[str, str] | None = None,
) -> DlqContents:
    """Every record now in ``topic`` (each partition from its first to its high watermark at the
    start of the read), decoded as ``DeadLetter``. Records that do not decode are returned as
    ``Unreadable``, not raised: the tool must show a damaged DLQ, not die on it.

    Raises ``DlqError`` when the topic does not exist, ``TimeoutError`` when it cannot be read to
    its end within ``timeout_s``.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            # A throw-away group: nothing is committed, and no real group's offsets move.
            "group.id": f"dlq-tool-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "allow.auto.create.topics": False,  # reading a mistyped --topic must not create it
            **(consumer_config or {}),
        }
    )
    deadline = time.monotonic() + timeout_s
    entries: list[DlqEntry] = []
    unreadable: list[Unreadable] = []
    try:
        metadata = consumer.list_topics(topic, timeout=_remaining(deadline))
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise DlqError(
                f"dead-letter topic {topic!r} does not exist at {bootstrap_servers} "
                f"({found.error if found is not None else 'not in the metadata'}); give --topic"
            )
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for p in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=_remaining(deadline)
            )
            if high > low:
                starts[p], ends[p] = low, high
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in starts])
        position = dict(starts)
        while any(position[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading {topic}: at offsets {position} of {ends} after {timeout_s}s"
                )
            batch = consumer.consume(500, timeout=0.5)
            if not batch:
                # A transactional writer leaves a commit marker at the end of the log: it takes
                # an offset but is never delivered, so only the consumer's position shows that
                # the end was reached.
                for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                    position[tp.partition] = max(position[tp.partition], tp.offset)
            for msg in batch:
                if msg.error():
                    raise DlqError(f"reading {topic}: {msg.error()}")
                p, offset = msg.partition(), msg.offset()
                position[p] = offset + 1
                if offset >= ends[p]:
                    continue  # appended after the read began: not part of this snapshot
                try:
                    _schema_id, record = decode_record(msg.value(), SCHEMA)
                except DecodeError as exc:
                    unreadable.append(Unreadable(p, offset, f"{type(exc).__name__}: {exc}"))
                    continue
                _ts_type, ts = msg.timestamp()
                entries.append(DlqEntry(DeadLetter.from_avro(record), topic, p, offset, ts))
        consumer.unassign()
    finally:
        consumer.close()
    return DlqContents(topic, entries, unreadable)


def check_targets(
    plan: Sequence[ReplayRecord],
    bootstrap_servers: str,
    *,
    timeout_s: float = 30.0,
    client_config: Mapping[str, str] | None = None,
) -> None:
    """Raises ``DlqError`` when a target topic is missing or lacks a partition the plan writes
    to: a replay must not auto-create topics or fail half-way."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            "allow.auto.create.topics": False,  # the metadata look-up must not create the topic
            **(client_config or {}),
        }
    )
    for topic, highest in sorted(replay_targets(plan).items()):
        found = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise DlqError(
                f"target topic {topic!r} does not exist; create it first (replay creates none)"
            )
        if highest >= len(found.partitions):
            raise DlqError(
                f"target topic {topic!r} has {len(found.partitions)} partitions, the replay "
                f"needs partition {highest}; use --partitioning key to place records by key"
            )


def send(
    plan: Sequence[ReplayRecord],
    bootstrap_servers: str,
    *,
    producer_config: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
    progress: bool = True,
) -> int:
    """Produces ``plan`` in order through an idempotent producer (so retries neither duplicate
    nor reorder within a partition); returns the number of records the broker acknowledged.
    Raises ``DlqError`` when any record is not delivered within ``timeout_s``."""
    from confluent_kafka import Producer
    from tqdm import tqdm

    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            **(producer_config or {}),
        }
    )
    report = DeliveryReport()

    deadline = time.monotonic() + timeout_s
    bar = tqdm(total=len(plan), unit="rec", desc="replay", disable=not progress, file=sys.stderr)
    for r in plan:
        kwargs: dict[str, Any] = {}
        if r.partition is not None:
            kwargs["partition"] = r.partition
        if r.timestamp_ms is not None:
            kwargs["timestamp"] = r.timestamp_ms
        while True:
            try:
                producer.produce(
                    r.topic,
                    value=r.value,
                    key=r.key,
                    headers=list(r.headers),
                    on_delivery=report,
                    **kwargs,
                )
                break
            except BufferError:
                # The local queue is full: wait for deliveries, but not forever.
                if time.monotonic() > deadline:
                    raise DlqError(
                        f"replay: producer queue still full after {timeout_s}s"
                    ) from None
                producer.poll(0.05)
        producer.poll(0)
        bar.update(1)
    remaining = producer.flush(_remaining(deadline))
    bar.close()
    if remaining or report.errors:
        raise DlqError(
            f"replay: {report.delivered} of {len(plan)} delivered; {remaining} not delivered "
            "within "
            f"{timeout_s}s, {len(report.errors)} delivery errors (first: {report.errors[:1]})"
        )
    return report.delivered
