"""Kafka out from the Python worker: ``ProduceKafkaRecords``, the librdkafka write.

``PCollection[(key, value)]`` of bytes or None -> one Kafka record each on one topic, sent by a
confluent-kafka (librdkafka) producer that lives in the Python SDK worker, instead of Beam's Java
``KafkaIO.write()`` (``transforms.io.kafka.WriteKafkaRecords``). Why: the Java write runs in a Java
SDK harness of its own, so every output record is encoded by the Python worker, moved by the
runner to the Java worker and decoded there (and on Flink each job starts a Java worker JVM before
its first write); the librdkafka producer sends from the stage that made the record. Measured in
docs/performance.md (change 14).

Semantics, the same as the Java write's (at-least-once, no transactions):

- Each element is handed to the producer as it comes (``produce`` is asynchronous); the bundle
  ends only when every record of it is acknowledged (``flush`` in ``finish_bundle``), so a bundle
  the runner commits has been written, and a bundle that fails is retried whole (its records may
  be written twice: duplicates, never loss).
- A record the broker or the producer refuses (a delivery report with an error, a record above
  ``message.max.bytes``, a flush that does not finish within ``delivery.timeout.ms``) fails the
  bundle with an error that names the topic and the cause, as Java's ``KafkaWriter`` does.
- The record timestamp is the producer's send time; no headers.
- Producer settings default to the Java client's (``acks=all``, idempotence on). Properties are
  librdkafka's names; the Java names of the few settings whose names differ are translated
  (``max.request.size`` -> ``message.max.bytes``, ...), and a property librdkafka does not know
  fails at construction. Security settings come from the client properties file
  (``security_file``), read where the producer runs: secrets never travel in the job.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from transforms.io.kafka import key_value_of

# Java producer property -> librdkafka's name for the same setting (where they differ).
JAVA_TO_LIBRDKAFKA = {
    "max.request.size": "message.max.bytes",
    "buffer.memory": None,  # librdkafka: queue.buffering.max.kbytes (other unit): not mapped
    "max.block.ms": None,  # no librdkafka equivalent: produce() never blocks here
    "key.serializer": None,
    "value.serializer": None,
}
# librdkafka's producer defaults that differ from the Java client's (Kafka 3.0+): same delivery.
JAVA_DEFAULTS = {"acks": "all", "enable.idempotence": "true"}
# Settings of a consumer (a pipeline's --kafka_property applies to both): not the producer's.
_CONSUMER_ONLY = (
    "group.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "key.deserializer",
    "value.deserializer",
    "isolation.level",
    "fetch.",
    "max.poll.",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
)
# How long a full local queue is drained before produce() is tried again, and how many times.
_QUEUE_FULL_WAIT_S = 0.5
_QUEUE_FULL_TRIES = 600
# A bundle's count is stamped at the end of the global window: never behind a watermark.
_END_OF_GLOBAL_WINDOW = GlobalWindow().max_timestamp()


class KafkaProduceError(RuntimeError):
    """Records could not be written; the message names the topic and the broker's cause."""


def producer_config(
    properties: Mapping[str, str], security_file: str | None = None
) -> dict[str, str]:
    """The librdkafka producer config for ``properties`` (Kafka client properties, with
    ``bootstrap.servers``): consumer-only keys dropped, Java names translated, the Java client's
    delivery defaults added; with ``security_file``, its security settings mapped to librdkafka
    (``transforms.io.client_config``) instead of the given ones."""
    from transforms.io.client_config import with_file_security

    config: dict[str, str] = {}
    for key, value in properties.items():
        if key.startswith(_CONSUMER_ONLY):
            continue
        if key in JAVA_TO_LIBRDKAFKA:
            name = JAVA_TO_LIBRDKAFKA[key]
            if name is not None:
                config[name] = value
            continue
        config[key] = value
    config = with_file_security(config, security_file)
    for key, value in JAVA_DEFAULTS.items():
        config.setdefault(key, value)
    return config


def _producer(config: Mapping[str, str], on_failure: Any = None) -> Any:
    """A librdkafka producer; ``on_failure(err, msg)`` is called for each record it could not
    deliver, and only for those (``delivery.report.only.error``: a Python call per delivered
    record would cost the worker's interpreter a callback and a GIL hand-over per record)."""
    from confluent_kafka import KafkaException, Producer

    settings: dict[str, Any] = dict(config)
    if on_failure is not None:
        settings["delivery.report.only.error"] = True
        settings["on_delivery"] = on_failure
    try:
        return Producer(settings)
    except KafkaException as exc:
        raise KafkaProduceError(
            f"the Kafka producer of the librdkafka write refused its configuration: {exc}. "
            "Give producer properties with librdkafka's names (or the Java names it translates: "
            f"{', '.join(k for k, v in JAVA_TO_LIBRDKAFKA.items() if v)}), and security settings "
            "in the client properties file (--kafka_config_file)"
        ) from exc


class _Produce(beam.DoFn):
    """Sends each element; the bundle ends when all of its records are acknowledged."""

    def __init__(self, topic: str, properties: Mapping[str, str], security_file: str | None):
        self._topic = topic
        self._properties = dict(properties)
        self._security_file = security_file
        self._producer: Any = None
        self._failures: list[Any] = []
        self._written = 0
        self._flush_timeout_s = 0.0

    def setup(self) -> None:
        config = producer_config(self._properties, self._security_file)
        # Beyond delivery.timeout.ms librdkafka reports each pending record as failed.
        self._flush_timeout_s = int(config.get("delivery.timeout.ms", 300_000)) / 1000 + 30
        self._producer = _producer(config, on_failure=self._report)

    def start_bundle(self) -> None:
        self._failures = []
        self._written = 0

    def _report(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failures.append(err)

    def process(self, element: tuple[bytes | None, bytes | None]) -> None:
        key, value = key_value_of(element)
        produce = self._producer.produce
        for _ in range(_QUEUE_FULL_TRIES):
            try:
                produce(self._topic, value, key)
                break
            except BufferError:  # the local queue is full: let librdkafka send some
                self._producer.poll(_QUEUE_FULL_WAIT_S)
            except Exception as exc:  # refused before sending (too large, unknown topic, ...)
                raise KafkaProduceError(
                    f"the producer refused a record for topic {self._topic!r} "
                    f"({len(value or b'')} bytes of value): {exc}"
                ) from exc
        else:
            raise KafkaProduceError(
                f"the producer's queue for topic {self._topic!r} stayed full for "
                f"{_QUEUE_FULL_TRIES * _QUEUE_FULL_WAIT_S:.0f} s: is the broker reachable?"
            )
        self._written += 1
        if self._failures:
            self._raise()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        left = self._producer.flush(self._flush_timeout_s)
        if self._failures:
            self._raise()
        if left:
            raise KafkaProduceError(
                f"{left} records to topic {self._topic!r} were not acknowledged within "
                f"{self._flush_timeout_s:.0f} s"
            )
        # The bundle's one output (see ProduceKafkaRecords.expand): how many records it wrote.
        yield WindowedValue(self._written, _END_OF_GLOBAL_WINDOW, (GlobalWindow(),))

    def _raise(self) -> None:
        failures, self._failures = self._failures, []
        raise KafkaProduceError(
            f"failed to send {len(failures)} records to topic {self._topic!r}: {failures[0]}"
        )

    def teardown(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None


class ProduceKafkaRecords(beam.PTransform[beam.PCollection[Any], beam.pvalue.PDone]):
    """Writes each ``(key, value)`` bytes pair (a None value is a tombstone) as one record to
    ``topic`` from the Python worker; see the module docstring for the delivery semantics.
    Windowing and timestamps of the input do not matter; each element is written as it comes.

    ``properties``: Kafka client properties with ``bootstrap.servers``; ``security_file``: a
    Kafka client properties file whose security settings the producer uses (read where it runs).
    A configuration librdkafka refuses fails here, at construction."""

    def __init__(
        self,
        topic: str,
        properties: Mapping[str, str],
        *,
        security_file: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"topic must be a non-empty topic name, got {topic!r}")
        if "bootstrap.servers" not in properties:
            raise ValueError("properties need 'bootstrap.servers'")
        self._topic = topic
        self._properties = dict(properties)
        self._security_file = security_file
        # Checked now (librdkafka validates names and values in the constructor).
        # The producer is dropped at once: nothing is sent, and its connection attempts say
        # nothing (a broker out of reach from here is the access check's business).
        _producer({**producer_config(self._properties, security_file), "log_level": "0"})

    def expand(self, records: beam.PCollection[Any]) -> beam.pvalue.PDone:
        written = records | "Produce" >> beam.ParDo(
            _Produce(self._topic, self._properties, self._security_file)
        ).with_output_types(int)
        # Why the producing step has an output, shuffled and dropped: Prism (2.73) waits for a
        # bundle of a stage without outputs in a loop that does not block (its data-done
        # channel is closed from the start), so it spins a core for as long as the bundle runs
        # (measured: +8 CPU-s in a 500 000-record run, docs/performance.md). One small element
        # per bundle across a shuffle gives the stage an output to wait for.
        _ = written | "BundleEnd" >> beam.Reshuffle() | "Drop" >> beam.Filter(lambda _: False)
        return beam.pvalue.PDone(records.pipeline)
