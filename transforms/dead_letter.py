"""The one dead-letter record every stage produces.

A stage that cannot process a record (undecodable, invalid, ...) emits a ``DeadLetter`` that keeps
the original key and value bytes and the record's Kafka coordinates, so a fixed pipeline can replay
it. Its Avro form (``schemas/dead_letter.avsc``) is what goes to the dead-letter topic, keyed by the
original key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from transforms.types import KafkaRecord

PIPELINE_VERSION = "0.1.0"


class DeadLetter(NamedTuple):
    """Why one record could not be processed, and the record itself.

    ``stage`` names the transform that rejected it (``decode``, ``validate`` ...), ``error_type``
    the failure class (an exception class name or a validation rule id), ``error_message`` a
    human-readable reason.
    """

    stage: str
    error_type: str
    error_message: str
    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    record_timestamp_ms: int
    pipeline_version: str = PIPELINE_VERSION

    @classmethod
    def of(cls, stage: str, error_type: str, error_message: str, record: KafkaRecord) -> DeadLetter:
        """A dead letter for ``record`` rejected by ``stage``."""
        return cls(
            stage=stage,
            error_type=error_type,
            error_message=error_message,
            key=record.key,
            value=record.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            record_timestamp_ms=record.timestamp_ms,
        )

    @classmethod
    def from_error(
        cls, stage: str, record: KafkaRecord, error: tuple[type, str, list[str]]
    ) -> DeadLetter:
        """A dead letter from the ``(exception type, repr, traceback lines)`` triple that Beam's
        ``with_exception_handling`` puts on its dead-letter output. ``error_type`` is the
        exception class's ``error_type`` attribute when it has one (e.g. a validation rule id),
        else its class name."""
        exc_type, exc_repr, _traceback = error
        error_type = getattr(exc_type, "error_type", None) or exc_type.__name__
        return cls.of(stage, error_type, exc_repr, record)

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> DeadLetter:
        """The dead letter of a decoded dead-letter-topic record (the inverse of ``to_avro``)."""
        return cls(
            stage=record["stage"],
            error_type=record["error_type"],
            error_message=record["error_message"],
            key=record["key"],
            value=record["value"],
            topic=record["topic"],
            partition=record["partition"],
            offset=record["offset"],
            record_timestamp_ms=record["record_timestamp"],
            pipeline_version=record["pipeline_version"],
        )

    def to_avro(self) -> dict[str, Any]:
        """The record as written to the dead-letter topic (``schemas/dead_letter.avsc``)."""
        return {
            "stage": self.stage,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "key": self.key,
            "value": self.value,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "record_timestamp": self.record_timestamp_ms,
            "pipeline_version": self.pipeline_version,
        }
