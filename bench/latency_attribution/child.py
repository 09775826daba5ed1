"""The child process of an attribution run (not on the LOOPBACK worker's GIL): the live
producer with send and delivery times, and the tail of the written output with its read times."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from typing import Any

from bench.kafka_config import client_conf
from bench.latency_attribution.inputs import Planned
from bench.workload import PARTITIONS

INPUT_PRODUCER = {"linger.ms": 1, "enable.idempotence": True}


TAIL_CONSUMER = {"fetch.wait.max.ms": 5, "fetch.min.bytes": 1}


def _produce_and_tail(
    records: list[Planned], bootstrap: str, topic: str, tail_topic: str, tail_s: float
) -> dict[str, Any]:
    """Sends ``records`` when due and records send/ack times; tails ``tail_topic`` meanwhile and
    for ``tail_s`` after the last ack (or until it holds every event), recording when each record
    became readable. Returns ``{"send": {id: ms}, "ack": {id: ms}, "seen": {id: [ms, ...]},
    "written": {id: ms}}``."""
    import threading

    from confluent_kafka import Consumer, Producer, TopicPartition

    from transforms.codec import decode_record

    send: dict[str, float] = {}
    ack: dict[str, float] = {}
    errors: list[str] = []
    seen: dict[str, list[float]] = {}
    written: dict[str, int] = {}
    expected = {r.event_id for r in records}
    stop = threading.Event()

    def tail() -> None:
        consumer = Consumer(
            client_conf(
                bootstrap,
                settings={
                    "group.id": f"attr-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    **TAIL_CONSUMER,
                },
            )
        )
        consumer.assign([TopicPartition(tail_topic, p, 0) for p in range(PARTITIONS)])
        try:
            while not stop.is_set():
                for msg in consumer.consume(1_000, timeout=0.05):
                    now = time.time() * 1000
                    if msg.error():
                        continue
                    event_id = decode_record(msg.value(), "PropertyEvent")[1]["event_id"]
                    seen.setdefault(event_id, []).append(now)
                    written.setdefault(event_id, msg.timestamp()[1])
        finally:
            consumer.close()

    tailer = threading.Thread(target=tail, daemon=True)
    tailer.start()
    producer = Producer(client_conf(bootstrap, settings=INPUT_PRODUCER))

    def delivered(event_id: str, err) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            ack[event_id] = time.time() * 1000

    for r in records:
        while True:
            wait_ms = r.due_ms - time.time() * 1000
            if wait_ms <= 0:
                break
            producer.poll(wait_ms / 1000)  # serves delivery callbacks while waiting
        send[r.event_id] = time.time() * 1000
        producer.produce(
            topic,
            value=r.value,
            key=r.key,
            partition=r.partition,
            timestamp=r.due_ms,
            on_delivery=lambda err, _msg, event_id=r.event_id: delivered(event_id, err),
        )
        producer.poll(0)
    left = producer.flush(60)
    if left or errors:
        stop.set()
        raise RuntimeError(f"input: {left} not delivered, errors {errors[:3]}")
    deadline = time.monotonic() + tail_s
    while time.monotonic() < deadline and not expected <= seen.keys():
        time.sleep(0.2)
    time.sleep(1.0)  # late duplicates, if any
    stop.set()
    tailer.join(timeout=10)
    return {"send": send, "ack": ack, "seen": seen, "written": written}


def produce_and_tail(
    records: list[Planned], bootstrap: str, topic: str, tail_topic: str, tail_s: float
) -> dict[str, Any]:
    """``_produce_and_tail`` in a spawned process (its own GIL)."""
    span_s = max(0.0, (records[-1].due_ms - time.time() * 1000) / 1000) if records else 0
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        job = pool.apply_async(_produce_and_tail, (records, bootstrap, topic, tail_topic, tail_s))
        return job.get(timeout=span_s + tail_s + 300)
