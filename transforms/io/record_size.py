"""Records too large for Kafka go to the dead-letter topic instead of failing the job.

Beam's Java ``KafkaIO.write()`` (what ``WriteKafkaRecords`` expands to) sends each record
asynchronously and keeps the first send failure; its next element or its bundle's end throws
``IOException("KafkaWriter : failed to send N records")``. A record larger than the producer's
``max.request.size`` is such a failure (Kafka's ``RecordTooLargeException``), so one oversize
record would fail its bundle on every retry, and the job with it. No error handler of the write
is exposed to Python, so the check happens before the write, where the record can still become
a dead letter:

- ``EncodeForTopic`` encodes records derived from an input record (``Decoded``: the enriched and
  high-value outputs) and sends the ones that Kafka's producer would refuse to the dead letters,
  as the input record that produced them (stage ``write``, ``error_type`` ``record_too_large``,
  the message naming the output topic, the size and the limit), so they can be found and
  replayed like any other dead letter;
- ``FitRecordValue`` keeps the dead-letter and late topics writable: a dead letter or late
  record whose original value would make it too large (an input record of about the limit) keeps
  the original's key and Kafka coordinates and drops its value (a dead letter's message says so);
  the original stays in its input topic at those coordinates (while retained).

The limit is the producer's: ``max.request.size`` (``--kafka_property``, Kafka's default
1 048 576 bytes) against Kafka's own upper bound of a record's size (key + value + 82 bytes of
batch and record framing: ``DefaultRecordBatch.RECORD_BATCH_OVERHEAD`` 61 +
``DefaultRecord.MAX_RECORD_OVERHEAD`` 21, no headers). A topic whose ``max.message.bytes`` is
below ``max.request.size`` would reject what passes this check with an error that still fails the
write: Kafka's defaults (1 048 588 for a topic) are above the producer's, and a cluster with
smaller topic limits must lower ``max.request.size`` to match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import apache_beam as beam

from schemas import CATALOG, SchemaEntry
from transforms import metrics
from transforms.codec.avro import AvroEncoder
from transforms.codec.encode import EncodeFn
from transforms.dead_letter import DeadLetter
from transforms.types import Decoded

STAGE = "write"
ERROR_TYPE = "record_too_large"
MAX_REQUEST_SIZE = "max.request.size"
DEFAULT_MAX_REQUEST_SIZE = 1_048_576  # Kafka's producer default
RECORD_OVERHEAD_BYTES = 61 + 21  # batch header + a record's largest framing, no headers
TOO_LARGE = "too_large"
VALUE_OMITTED = "dead_letter_value_omitted"  # counter: dead letters written without their value
# In the message of a dead letter written without its value (tools.dlq refuses to replay it).
VALUE_OMITTED_MARK = "bytes omitted: the record would be"


def max_record_bytes(producer_config: Mapping[str, str]) -> int:
    """The largest record the producer of ``producer_config`` sends: its ``max.request.size``
    (Kafka's default when unset). ``ValueError`` when it is not an integer above the framing."""
    raw = producer_config.get(MAX_REQUEST_SIZE, DEFAULT_MAX_REQUEST_SIZE)
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{MAX_REQUEST_SIZE} must be a number of bytes, got {raw!r}") from None
    if limit <= RECORD_OVERHEAD_BYTES:
        raise ValueError(f"{MAX_REQUEST_SIZE} must be > {RECORD_OVERHEAD_BYTES} bytes, got {limit}")
    return limit


def record_size(key: bytes | None, value: bytes | None) -> int:
    """Kafka's upper bound of the size of a record with this key and value (no headers)."""
    return len(key or b"") + len(value or b"") + RECORD_OVERHEAD_BYTES


def _check_limit(limit_bytes: int) -> None:
    if limit_bytes <= RECORD_OVERHEAD_BYTES:
        raise ValueError(f"limit_bytes must be > {RECORD_OVERHEAD_BYTES}, got {limit_bytes}")


class SizedOutput(NamedTuple):
    """``fits``: ``(key, value)`` pairs to write; ``too_large``: dead letters of the input
    records whose output Kafka would refuse."""

    fits: beam.PCollection[tuple[bytes | None, bytes]]
    too_large: beam.PCollection[DeadLetter]


class _EncodeForTopicFn(EncodeFn):
    """``EncodeAvro``'s encoding of a ``Decoded`` record's payload, counted only when written."""

    def __init__(
        self,
        schema: SchemaEntry,
        key_fn: Callable[[Mapping[str, Any]], bytes | None],
        topic: str,
        limit_bytes: int,
    ) -> None:
        super().__init__(schema, None, key_fn)
        self._topic = topic
        self._limit = limit_bytes

    def process(self, record: Decoded):
        key, value = self.encode(record.payload)
        size = record_size(key, value)
        if size > self._limit:
            message = (
                f"the {self.short_name} record for {self._topic} would be "
                f"{size} bytes (key {len(key or b'')}, value {len(value)}), above the producer's "
                f"{MAX_REQUEST_SIZE} {self._limit}: Kafka would refuse it (RecordTooLargeException)"
            )
            yield beam.pvalue.TaggedOutput(
                TOO_LARGE, DeadLetter.of(STAGE, ERROR_TYPE, message, record.source)
            )
            return
        self.count()
        yield key, value


class EncodeForTopic(beam.PTransform):
    """``Decoded`` records whose payload has schema ``schema_name`` → ``SizedOutput``: the
    ``(key, value)`` pairs Kafka accepts, and a dead letter of the input record for each other.

    Args:
      schema_name: the payloads' record name in the catalog (e.g. ``EnrichedPropertyEvent``).
      key_fn: payload → key bytes (or None), e.g. ``FieldKey("property_id")``; picklable.
      topic: the output topic (named in the dead letter's message).
      limit_bytes: the largest record to write (``max_record_bytes`` of the producer config).

    The dead letters are not counted here: the caller counts them with the others
    (``metrics.CountDeadLetters``).
    """

    def __init__(
        self,
        schema_name: str,
        key_fn: Callable[[Mapping[str, Any]], bytes | None],
        topic: str,
        limit_bytes: int,
        *,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        _check_limit(limit_bytes)
        self._fn = _EncodeForTopicFn(CATALOG.latest(schema_name), key_fn, topic, limit_bytes)

    def expand(self, records: beam.PCollection[Decoded]) -> SizedOutput:
        results = records | "EncodeChecked" >> beam.ParDo(self._fn).with_outputs(
            TOO_LARGE, main="fits"
        )
        return SizedOutput(fits=results.fits, too_large=results[TOO_LARGE])


class _FitRecordFn(beam.DoFn):
    def __init__(self, schema: SchemaEntry, key_field: str, limit_bytes: int) -> None:
        self._schema = schema
        self._key_field = key_field
        self._limit = limit_bytes

    def setup(self) -> None:
        self._encoder = AvroEncoder(self._schema)
        self._trimmed = metrics.counter(VALUE_OMITTED)

    def _size(self, record: Mapping[str, Any]) -> int:
        return record_size(record[self._key_field], self._encoder.encode(record))

    def process(self, record: dict[str, Any]):
        size = self._size(record)
        if size <= self._limit:
            yield record
            return
        self._trimmed.inc()
        note = (
            f" [value of {len(record['value'] or b'')} {VALUE_OMITTED_MARK} {size} bytes, "
            f"above the producer's {MAX_REQUEST_SIZE} {self._limit}; the original is at "
            f"{record['topic']}/{record['partition']}/{record['offset']}]"
        )
        trimmed = {**record, "value": None}
        if "error_message" in trimmed:
            trimmed["error_message"] += note
        if self._size(trimmed) > self._limit:
            trimmed["key"] = None
        yield trimmed


class FitRecordValue(beam.PTransform):
    """Records that carry an original record (the ``DeadLetter`` and ``LateRecord`` dicts: fields
    ``key``, ``value``, ``topic``, ``partition``, ``offset``) → the same records, each small enough
    to write: one that would exceed ``limit_bytes`` loses the original value (then its key), a
    dead letter's message saying so and where the original is. Element-wise.

    Args:
      schema_name: the records' schema in the catalog (``DeadLetter``, ``LateRecord``).
      key_field: the field the output is keyed by (the size counts the key).
      limit_bytes: the largest record to write (``max_record_bytes`` of the producer config).
    """

    def __init__(
        self, schema_name: str, key_field: str, limit_bytes: int, *, label: str | None = None
    ) -> None:
        super().__init__(label)
        _check_limit(limit_bytes)
        self._fn = _FitRecordFn(CATALOG.latest(schema_name), key_field, limit_bytes)

    def expand(self, records: beam.PCollection[dict[str, Any]]) -> beam.PCollection:
        return records | "FitRecord" >> beam.ParDo(self._fn)
