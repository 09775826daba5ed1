"""The element types that flow between the transforms.

``KafkaRecord`` is one consumed Kafka record with its coordinates (the dead-letter and late outputs
need them to point back at the original). ``Decoded`` is a record whose value has been decoded into
an Avro dict; it keeps its ``KafkaRecord`` so any later stage can still dead-letter or late-route
the original bytes.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class KafkaRecord(NamedTuple):
    """One Kafka record as read, bytes untouched.

    ``timestamp_ms`` is the record timestamp (CreateTime per the wire contract: the event time,
    capped at send time); -1 when the broker gave none.
    """

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    headers: tuple[tuple[str, bytes | None], ...] = ()


class Decoded(NamedTuple):
    """A decoded record: ``payload`` is the Avro record as a dict (fastavro's representation:
    enums as str, ``timestamp-millis`` fields as int milliseconds since the epoch), ``schema_id``
    the writer schema id of the Confluent wire format, ``source`` the record it came from."""

    payload: dict[str, Any]
    schema_id: int
    source: KafkaRecord
