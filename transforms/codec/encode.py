"""``EncodeAvro``: payload dicts in, ``(key bytes, value bytes)`` out for a Kafka write."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import apache_beam as beam

from schemas import CATALOG, Catalog, SchemaEntry, SchemaNotFoundError
from transforms import metrics
from transforms.codec.avro import AvroEncoder


class FieldKey:
    """A ``key_fn`` for ``EncodeAvro``: the UTF-8 bytes of one field (None stays None)."""

    def __init__(self, field: str) -> None:
        if not field:
            raise ValueError("FieldKey needs a field name")
        self.field = field

    def __call__(self, record: Mapping[str, Any]) -> bytes | None:
        value = record[self.field]
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode("utf-8")


class EncodeFn(beam.DoFn):
    """Encodes payload dicts of one schema (``EncodeAvro``'s DoFn; a subclass may decide per
    record whether to write it, see ``transforms.io.record_size``)."""

    def __init__(
        self,
        schema: SchemaEntry,
        schema_id: int | None,
        key_fn: Callable[[Mapping[str, Any]], bytes | str | None],
    ) -> None:
        self._schema = schema
        self._schema_id = schema_id
        self._key_fn = key_fn

    @property
    def short_name(self) -> str:
        """The schema's short name (``ZipCount``, not ``property.events.ZipCount``)."""
        return self._schema.name.rsplit(".", 1)[-1]

    def setup(self) -> None:
        self._encoder = AvroEncoder(self._schema, self._schema_id)
        self._encoded = metrics.counter(metrics.ENCODED)
        self._encoded_schema = metrics.counter(metrics.encoded(self.short_name))

    def encode(self, record: Mapping[str, Any]) -> tuple[bytes | None, bytes]:
        """``record`` as its ``(key, value)`` pair; not counted (``count`` does)."""
        key = self._key_fn(record)
        if isinstance(key, str):
            key = key.encode("utf-8")
        return key, self._encoder.encode(record)

    def count(self) -> None:
        """Counts one record handed to the write."""
        self._encoded.inc()
        self._encoded_schema.inc()

    def process(self, record: Mapping[str, Any]):
        pair = self.encode(record)
        self.count()
        yield pair


class EncodeAvro(
    beam.PTransform[beam.PCollection[Mapping[str, Any]], beam.PCollection[tuple[bytes, bytes]]]
):
    """Encodes payload dicts of one schema into ``(key, value)`` byte pairs, value in the Confluent
    wire format, ready for a Kafka write.

    Args:
      schema_name: record name in ``catalog`` (e.g. ``ZipCount``).
      schema_id: id written in the header; None means the catalog's id (with a registry, pass the
        id the registry gave the schema).
      key_fn: record → key (bytes, str encoded as UTF-8, or None), e.g. ``FieldKey("zip_code")``;
        must be picklable.

    A record that does not fit the schema raises ``EncodeError`` and fails the bundle: the shapes
    are the project's own, so that is a bug, not bad input. Element-wise.
    """

    def __init__(
        self,
        schema_name: str,
        schema_id: int | None,
        key_fn: Callable[[Mapping[str, Any]], bytes | str | None],
        *,
        catalog: Catalog = CATALOG,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        try:
            self._schema = catalog.latest(schema_name)
        except SchemaNotFoundError as exc:
            raise ValueError(f"schema_name: {exc}") from exc
        if schema_id is not None and not 0 <= schema_id < 2**31:
            raise ValueError(f"schema_id must be None or in [0, 2**31), got {schema_id}")
        if not callable(key_fn):
            raise ValueError("key_fn must be callable, e.g. FieldKey('property_id')")
        self._schema_id = schema_id
        self._key_fn = key_fn

    def expand(
        self, records: beam.PCollection[Mapping[str, Any]]
    ) -> beam.PCollection[tuple[bytes, bytes]]:
        return records | "Encode" >> beam.ParDo(
            EncodeFn(self._schema, self._schema_id, self._key_fn)
        )
