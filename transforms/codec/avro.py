"""The wire format without Beam: ``AvroDecoder`` (header check, one resolved reader per writer
id) and ``AvroEncoder``, and the cached ``decode_record``/``encode_record`` the simulator and tests
use."""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Mapping
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from schemas import CATALOG, Catalog, SchemaEntry
from transforms.codec.errors import (
    BadMagicByteError,
    CorruptBodyError,
    DecodeError,
    EncodeError,
    IncompatibleSchemaError,
    MissingValueError,
    TrailingBytesError,
    TruncatedHeaderError,
    UnknownSchemaIdError,
    short_reason,
)
from transforms.codec.writers import CatalogSchemas, WriterSchemas

MAGIC_BYTE = 0


HEADER_SIZE = 5  # magic byte + 4-byte schema id


_HEADER = struct.Struct(">BI")  # one C call parses both (a measurable share of a decode)


# What fastavro raises on a body that is not a valid encoding of the writer schema (observed by
# fuzzing: EOFError for truncation, UnicodeDecodeError (a ValueError) for bad strings, IndexError
# for an enum/union index out of range; ValueError/OverflowError for absurd lengths).
_BODY_ERRORS = (EOFError, ValueError, IndexError, OverflowError)


# Ids that turned out unknown are remembered so that a stream of garbage does not cost one
# registry round trip per record; the memory is bounded by forgetting them all past this size.
_MAX_REMEMBERED_UNKNOWN_IDS = 1000


# Avro's 32-bit int. fastavro reads an int's varint into a 64-bit integer without checking its range
# (a long wraps at 64 bits, so it always fits), so a body whose varint is too long for an int
# decodes "successfully" into a value no encoder accepts (found by fuzzing: square_feet
# 2 147 483 648). Such a record would pass validation and fail the job where an output is encoded
# (an EncodeError is a bug, not a dead letter).
_INTEGER_RANGES = {"int": (-(2**31), 2**31 - 1)}


def _integer_fields(schema: Mapping[str, Any]) -> tuple[tuple[str, int, int], ...]:
    """``(field, lowest, highest)`` of each top-level ``int`` field of a record schema (also
    inside a union, e.g. ``["null", "int"]``)."""
    fields = []
    for field in schema.get("fields", ()):
        kinds = field["type"] if isinstance(field["type"], list) else [field["type"]]
        for kind in kinds:
            name = kind.get("type") if isinstance(kind, Mapping) else kind
            if name in _INTEGER_RANGES:
                fields.append((field["name"], *_INTEGER_RANGES[name]))
                break
    return tuple(fields)


class _ResolvedReader:
    """Reads wire-format values written with one writer schema into the reader's shape."""

    __slots__ = ("integers", "reader", "reader_name", "schema_id", "writer", "writer_name")

    def __init__(
        self,
        schema_id: int,
        writer_name: str,
        writer: dict[str, Any],
        reader_name: str,
        reader: dict[str, Any],
    ) -> None:
        self.schema_id = schema_id
        self.writer_name = writer_name
        self.writer = writer
        self.reader_name = reader_name
        # Same schema: no resolution (fastavro would otherwise compare the two per record).
        self.reader = None if writer == reader else reader
        self.integers = _integer_fields(reader)

    def read(self, value: bytes) -> dict[str, Any]:
        fo = io.BytesIO(value)
        fo.seek(HEADER_SIZE)  # no slice: BytesIO shares the buffer
        try:
            record = schemaless_reader(fo, self.writer, self.reader)
        except SchemaResolutionError as exc:
            raise IncompatibleSchemaError(
                f"writer schema id {self.schema_id} ({self.writer_name}) cannot be read as "
                f"{self.reader_name}: {short_reason(exc)}"
            ) from exc
        except _BODY_ERRORS as exc:
            raise CorruptBodyError(
                f"body of {len(value) - HEADER_SIZE} bytes is not a {self.writer_name} "
                f"(schema id {self.schema_id}): {short_reason(exc)}"
            ) from exc
        if fo.tell() != len(value):
            raise TrailingBytesError(
                f"{len(value) - fo.tell()} bytes left after a complete {self.writer_name} "
                f"(schema id {self.schema_id}, value of {len(value)} bytes)"
            )
        for name, lowest, highest in self.integers:
            number = record[name]
            if number is not None and not lowest <= number <= highest:
                raise CorruptBodyError(
                    f"{name} = {number} is outside its Avro type's range [{lowest}, {highest}]"
                    f" ({self.writer_name}, schema id {self.schema_id})"
                )
        return record


class _Unreadable:
    """A cached verdict for a writer id that cannot be read (unknown or not resolvable)."""

    __slots__ = ("error",)

    def __init__(self, error: DecodeError) -> None:
        self.error = error

    def read(self, value: bytes) -> dict[str, Any]:
        raise type(self.error)(str(self.error))


class AvroDecoder:
    """Decodes wire-format values into dicts shaped by one reader schema.

    Keeps one resolved reader (or a cached "cannot read" verdict) per writer schema id: the
    writer schema is looked up and parsed the first time an id is seen, never again.
    """

    def __init__(self, reader: SchemaEntry, writer_schemas: WriterSchemas) -> None:
        self._reader = reader
        self._writer_schemas = writer_schemas
        self._readers: dict[int, _ResolvedReader | _Unreadable] = {}
        self._unknown_ids = 0

    @property
    def reader(self) -> SchemaEntry:
        return self._reader

    def decode(self, value: bytes | None) -> tuple[int, dict[str, Any]]:
        """``(writer schema id, record dict)`` of one wire-format value; ``DecodeError`` (a
        subclass naming the malformation) if it cannot be decoded as the reader schema."""
        try:
            magic, schema_id = _HEADER.unpack_from(value)
        except (struct.error, TypeError):
            # Off the hot path: say why there is no header.
            if value is None:
                raise MissingValueError("the record has no value (null)") from None
            raise TruncatedHeaderError(
                f"value of {len(value)} bytes is shorter than the {HEADER_SIZE}-byte header"
            ) from None
        if magic != MAGIC_BYTE:
            raise BadMagicByteError(f"first byte is 0x{magic:02x}, not the magic byte 0x00")
        reader = self._readers.get(schema_id)
        if reader is None:
            reader = self._resolve(schema_id)
        return schema_id, reader.read(value)

    def _resolve(self, schema_id: int) -> _ResolvedReader | _Unreadable:
        reader: _ResolvedReader | _Unreadable
        try:
            found = self._writer_schemas.lookup(schema_id)
        except IncompatibleSchemaError as exc:
            found, reader = None, _Unreadable(exc)
        else:
            if found is None:
                if self._unknown_ids >= _MAX_REMEMBERED_UNKNOWN_IDS:
                    self._forget_unknown_ids()
                self._unknown_ids += 1
                reader = _Unreadable(UnknownSchemaIdError(f"no writer schema with id {schema_id}"))
        if found is not None:
            writer_name, writer = found
            reader = _ResolvedReader(
                schema_id, writer_name, writer, self._reader.name, self._reader.parsed
            )
        self._readers[schema_id] = reader
        return reader

    def _forget_unknown_ids(self) -> None:
        self._readers = {
            k: v
            for k, v in self._readers.items()
            if not (isinstance(v, _Unreadable) and isinstance(v.error, UnknownSchemaIdError))
        }
        self._unknown_ids = 0


class AvroEncoder:
    """Encodes dicts of one schema into the wire format with a fixed schema id.

    Strict: a missing or extra field is an ``EncodeError`` (the record shapes are the project's
    own, so a mismatch is a bug to surface, not data to guess at). Times must be int epoch ms.
    """

    def __init__(self, schema: SchemaEntry, schema_id: int | None = None) -> None:
        schema_id = schema.schema_id if schema_id is None else schema_id
        if not 0 <= schema_id < 2**31:
            raise ValueError(f"schema_id must be in [0, 2**31), got {schema_id}")
        self._schema = schema
        self._schema_id = schema_id
        self._header = bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")

    @property
    def schema_id(self) -> int:
        return self._schema_id

    def encode(self, record: Mapping[str, Any]) -> bytes:
        fo = io.BytesIO()
        fo.write(self._header)
        try:
            schemaless_writer(fo, self._schema.parsed, record, strict=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(
                f"record does not fit {self._schema.name} (schema id {self._schema_id}): "
                f"{short_reason(exc)}"
            ) from exc
        return fo.getvalue()


def schema_entry(schema: str | SchemaEntry, catalog: Catalog) -> SchemaEntry:
    return schema if isinstance(schema, SchemaEntry) else catalog.latest(schema)


@functools.lru_cache(maxsize=64)
def _cached_decoder(reader: str | SchemaEntry, catalog: Catalog) -> AvroDecoder:
    return AvroDecoder(schema_entry(reader, catalog), CatalogSchemas(catalog))


@functools.lru_cache(maxsize=64)
def _cached_encoder(
    schema: str | SchemaEntry, schema_id: int | None, catalog: Catalog
) -> AvroEncoder:
    return AvroEncoder(schema_entry(schema, catalog), schema_id)


def decode_record(
    value: bytes | None, reader: str | SchemaEntry, catalog: Catalog = CATALOG
) -> tuple[int, dict[str, Any]]:
    """``(writer schema id, record)`` of a wire-format value read as ``reader`` (a record name in
    ``catalog``, or an entry), writer schemas from ``catalog``. Raises a ``DecodeError``."""
    return _cached_decoder(reader, catalog).decode(value)


def encode_record(
    record: Mapping[str, Any],
    schema: str | SchemaEntry,
    schema_id: int | None = None,
    catalog: Catalog = CATALOG,
) -> bytes:
    """The wire-format bytes of ``record`` written with ``schema`` (a record name in ``catalog``,
    or an entry) under ``schema_id`` (default: the catalog's id). Raises ``EncodeError``."""
    return _cached_encoder(schema, schema_id, catalog).encode(record)
