"""Avro in the Confluent wire format: ``DecodeAvro`` and ``EncodeAvro``, and the plain functions
under them (``decode_record``, ``encode_record``, ``AvroDecoder``, ``AvroEncoder``) usable without
Beam, e.g. by the simulator and tests.

Wire format: byte 0 is the magic byte ``0``, bytes 1-4 the writer schema id (big-endian), the rest
one Avro binary-encoded record (no container, no schema). Every ``DecodeAvro`` has one fixed
*reader* schema (e.g. PropertyEvent); the *writer* schema comes from the record's id, looked up in
a schema registry when one is configured, else in the local catalog (``schemas/catalog.json``).
When writer and reader differ (a later version with added optional fields, say) fastavro applies
Avro schema resolution; a writer that cannot be resolved to the reader (another record, a changed
field type) is a dead letter, never a mis-parse.

Elements: ``DecodeAvro`` takes ``KafkaRecord`` and gives ``Decoded`` (payload dict: enums as str,
times as int epoch ms) plus ``DeadLetter``; ``EncodeAvro`` takes payload dicts and gives
``(key bytes, value bytes)`` for a Kafka write. Both are element-wise: no windowing, triggering or
state; they keep each element's timestamp and window.

Speed: schemas are parsed once (catalog at import, registry schemas on first sight of an id); the
decoder keeps one resolved reader per writer id, so a record costs a header check, a dict look-up
and one fastavro ``schemaless_reader`` call.
"""

from __future__ import annotations

import functools
import io
import json
import struct
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol

import apache_beam as beam
from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException

from schemas import CATALOG, Catalog, SchemaEntry, SchemaNotFoundError, full_name, parse_for_python
from transforms import metrics
from transforms.dead_letter import DeadLetter
from transforms.types import Decoded, KafkaRecord

STAGE = "decode"
MAGIC_BYTE = 0
HEADER_SIZE = 5  # magic byte + 4-byte schema id
_HEADER = struct.Struct(">BI")  # one C call parses both (a measurable share of a decode)

# What fastavro raises on a body that is not a valid encoding of the writer schema (observed by
# fuzzing: EOFError for truncation, UnicodeDecodeError (a ValueError) for bad strings, IndexError
# for an enum/union index out of range; ValueError/OverflowError for absurd lengths).
_BODY_ERRORS = (EOFError, ValueError, IndexError, OverflowError)

# Error messages carry the third-party reason, cut so a dead letter stays small (fastavro's
# resolution errors print both schemas in full).
_MAX_REASON_CHARS = 300

# Ids that turned out unknown are remembered so that a stream of garbage does not cost one
# registry round trip per record; the memory is bounded by forgetting them all past this size.
_MAX_REMEMBERED_UNKNOWN_IDS = 1000


class DecodeError(Exception):
    """A record value that cannot be decoded. Subclasses name the malformation; ``error_type`` (the
    subclass name) becomes the dead letter's ``error_type``.

    ``repr()`` is the bare message: Beam's ``with_exception_handling`` passes on only the
    exception's type and repr, and the type is carried separately.
    """

    error_type: ClassVar[str] = "DecodeError"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.error_type = cls.__name__

    def __repr__(self) -> str:
        return str(self)


class MissingValueError(DecodeError):
    """The record has no value (null, e.g. a tombstone)."""


class TruncatedHeaderError(DecodeError):
    """The value is shorter than the 5-byte wire-format header."""


class BadMagicByteError(DecodeError):
    """The first byte is not the wire format's magic byte 0 (not Confluent-framed Avro)."""


class UnknownSchemaIdError(DecodeError):
    """No schema with the record's id in the registry (or the catalog when there is none)."""


class IncompatibleSchemaError(DecodeError):
    """The writer schema cannot be resolved to the reader schema (another record, a changed type,
    a reader field without default missing from the writer), or is not an Avro schema."""


class CorruptBodyError(DecodeError):
    """The Avro body is not a valid encoding of the writer schema (truncated, bad lengths, ...)."""


class TrailingBytesError(DecodeError):
    """Bytes remain after one complete record: the body is not what the header says it is."""


class EncodeError(Exception):
    """A record that does not fit the schema it is being encoded with. This is a bug in the
    producing stage (the record shapes are ours), so it fails the job rather than dead-lettering."""


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_REASON_CHARS else text[:_MAX_REASON_CHARS] + "..."


class _ResolvedReader:
    """Reads wire-format values written with one writer schema into the reader's shape."""

    __slots__ = ("reader", "reader_name", "schema_id", "writer", "writer_name")

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

    def read(self, value: bytes) -> dict[str, Any]:
        fo = io.BytesIO(value)
        fo.seek(HEADER_SIZE)  # no slice: BytesIO shares the buffer
        try:
            record = schemaless_reader(fo, self.writer, self.reader)
        except SchemaResolutionError as exc:
            raise IncompatibleSchemaError(
                f"writer schema id {self.schema_id} ({self.writer_name}) cannot be read as "
                f"{self.reader_name}: {_reason(exc)}"
            ) from exc
        except _BODY_ERRORS as exc:
            raise CorruptBodyError(
                f"body of {len(value) - HEADER_SIZE} bytes is not a {self.writer_name} "
                f"(schema id {self.schema_id}): {_reason(exc)}"
            ) from exc
        if fo.tell() != len(value):
            raise TrailingBytesError(
                f"{len(value) - fo.tell()} bytes left after a complete {self.writer_name} "
                f"(schema id {self.schema_id}, value of {len(value)} bytes)"
            )
        return record


class _Unreadable:
    """A cached verdict for a writer id that cannot be read (unknown or not resolvable)."""

    __slots__ = ("error",)

    def __init__(self, error: DecodeError) -> None:
        self.error = error

    def read(self, value: bytes) -> dict[str, Any]:
        raise type(self.error)(str(self.error))


class WriterSchemas(Protocol):
    """Where writer schemas come from: ``lookup(id)`` gives ``(full name, parsed schema)``, or
    None when the id is unknown. Called once per id per decoder, never per record."""

    def lookup(self, schema_id: int) -> tuple[str, dict[str, Any]] | None: ...


class CatalogSchemas:
    """Writer schemas from the local catalog (no registry configured)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def lookup(self, schema_id: int) -> tuple[str, dict[str, Any]] | None:
        entry = self._catalog.find(schema_id)
        return None if entry is None else (entry.name, entry.parsed)


class RegistrySchemas:
    """Writer schemas from a Confluent-compatible schema registry, through confluent-kafka's
    ``SchemaRegistryClient`` (which caches by id as well).

    A 404 means an unknown id (a dead letter). Any other registry failure (unreachable, 5xx,
    auth) is an infrastructure error and propagates: it fails the bundle, which the runner
    retries, instead of dead-lettering good records while the registry is down.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def lookup(self, schema_id: int) -> tuple[str, dict[str, Any]] | None:
        # Imported here: only the registry path needs confluent-kafka's registry module.
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise
        if schema.schema_type not in (None, "AVRO"):
            raise IncompatibleSchemaError(
                f"schema id {schema_id} is a {schema.schema_type} schema, not Avro"
            )
        if schema.references:
            raise IncompatibleSchemaError(
                f"schema id {schema_id} uses schema references, which this codec does not resolve"
            )
        try:
            definition = json.loads(schema.schema_str)
            parsed = parse_for_python(definition)
        except (ValueError, SchemaParseException) as exc:
            raise IncompatibleSchemaError(
                f"schema id {schema_id} is not a valid Avro schema: {_reason(exc)}"
            ) from exc
        is_named = isinstance(definition, dict) and "name" in definition
        return (full_name(definition) if is_named else json.dumps(definition)), parsed


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
                f"{_reason(exc)}"
            ) from exc
        return fo.getvalue()


def _entry(schema: str | SchemaEntry, catalog: Catalog) -> SchemaEntry:
    return schema if isinstance(schema, SchemaEntry) else catalog.latest(schema)


@functools.lru_cache(maxsize=64)
def _cached_decoder(reader: str | SchemaEntry, catalog: Catalog) -> AvroDecoder:
    return AvroDecoder(_entry(reader, catalog), CatalogSchemas(catalog))


@functools.lru_cache(maxsize=64)
def _cached_encoder(
    schema: str | SchemaEntry, schema_id: int | None, catalog: Catalog
) -> AvroEncoder:
    return AvroEncoder(_entry(schema, catalog), schema_id)


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


# --- Beam ---------------------------------------------------------------------------------------


class DecodeResult(NamedTuple):
    """``decoded``: one ``Decoded`` per readable record; ``dead_letters``: one ``DeadLetter``
    (stage ``decode``) per other record, with its original bytes."""

    decoded: beam.PCollection[Decoded]
    dead_letters: beam.PCollection[DeadLetter]


class _DecodeFn(beam.DoFn):
    """Decodes each record's value; raises ``DecodeError`` for the exception handler to route."""

    def __init__(
        self,
        reader: SchemaEntry,
        catalog: Catalog,
        registry_conf: Mapping[str, Any] | None,
        registry_client_factory: Callable[[dict[str, Any]], Any] | None,
    ) -> None:
        self._reader = reader
        self._catalog = catalog
        self._registry_conf = registry_conf
        self._registry_client_factory = registry_client_factory
        self._client: Any = None

    def setup(self) -> None:
        # The registry client (an HTTP session and its cache) is made here, once per DoFn
        # instance, and never pickled with the DoFn.
        writer_schemas: WriterSchemas
        if self._registry_conf is None:
            writer_schemas = CatalogSchemas(self._catalog)
        else:
            factory = self._registry_client_factory
            if factory is None:
                from confluent_kafka.schema_registry import SchemaRegistryClient

                factory = SchemaRegistryClient.new_client
            self._client = factory(dict(self._registry_conf))
            writer_schemas = RegistrySchemas(self._client)
        self._decoder = AvroDecoder(self._reader, writer_schemas)
        self._decoded = metrics.counter(metrics.DECODED)
        self._value_bytes = metrics.distribution(metrics.DECODED_VALUE_BYTES)

    def process(self, record: KafkaRecord):
        schema_id, payload = self._decoder.decode(record.value)
        self._decoded.inc()
        self._value_bytes.update(len(record.value))
        yield Decoded(payload, schema_id, record)

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _undecodable_to_dead_letter(failed: tuple[KafkaRecord, tuple[type, str, list[str]]]):
    record, error = failed
    return DeadLetter.from_error(STAGE, record, error)


class DecodeAvro(beam.PTransform[beam.PCollection[KafkaRecord], DecodeResult]):
    """Decodes Confluent wire-format Avro values into ``Decoded`` records of one reader schema.

    Args:
      reader_schema: what every value is read as: a record name in ``catalog`` (``PropertyEvent``
        or ``property.events.PropertyEvent``: its latest version) or a catalog entry (a pinned
        version, e.g. ``catalog.version("PropertyEvent", 1)``).
      catalog: the local schemas; writer schemas come from here when no registry is configured.
      schema_registry_url: a Confluent-compatible registry (``http(s)://...``, or ``mock://...``
        for confluent-kafka's in-process mock); writer schemas then come only from it.
      schema_registry_conf: further ``SchemaRegistryClient`` settings (auth, TLS, timeouts).
      registry_client_factory: makes the client from the conf dict in ``setup()`` (default
        ``SchemaRegistryClient.new_client``); must be picklable. Tests use it to seed a mock.
      threshold: the largest fraction of undecodable records tolerated before the job fails
        (Beam's ``with_exception_handling`` threshold); 1.0 never fails. Below 1.0 it counts per
        window of the input, so an unbounded input in the global window needs a windowed input.

    Every malformed value (null, short, bad magic byte, unknown id, incompatible writer schema,
    corrupt or trailing body) becomes a ``DeadLetter`` with stage ``decode`` and ``error_type``
    the ``DecodeError`` subclass name; nothing fails the bundle except infrastructure errors
    (an unreachable registry). Element-wise: no windowing, triggers or state.
    """

    def __init__(
        self,
        reader_schema: str | SchemaEntry,
        *,
        catalog: Catalog = CATALOG,
        schema_registry_url: str | None = None,
        schema_registry_conf: Mapping[str, Any] | None = None,
        registry_client_factory: Callable[[dict[str, Any]], Any] | None = None,
        threshold: float = 1.0,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        try:
            self._reader = _entry(reader_schema, catalog)
        except SchemaNotFoundError as exc:
            raise ValueError(f"reader_schema: {exc}") from exc
        if schema_registry_url is not None and not schema_registry_url.startswith(
            ("http://", "https://", "mock://")
        ):
            raise ValueError(
                "schema_registry_url must start with http://, https:// or mock://, got "
                f"{schema_registry_url!r}"
            )
        if schema_registry_conf and schema_registry_url is None:
            raise ValueError("schema_registry_conf is given without schema_registry_url; set both")
        if schema_registry_conf and "url" in schema_registry_conf:
            raise ValueError("pass the registry URL as schema_registry_url, not in the conf")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self._catalog = catalog
        self._registry_conf = (
            None
            if schema_registry_url is None
            else {"url": schema_registry_url, **dict(schema_registry_conf or {})}
        )
        self._registry_client_factory = registry_client_factory
        self._threshold = threshold

    def expand(self, records: beam.PCollection[KafkaRecord]) -> DecodeResult:
        results = records | "Decode" >> beam.ParDo(
            _DecodeFn(
                self._reader, self._catalog, self._registry_conf, self._registry_client_factory
            )
        ).with_exception_handling(
            main_tag="decoded",
            dead_letter_tag="undecodable",
            exc_class=DecodeError,
            threshold=self._threshold,
        )
        dead_letters = (
            results["undecodable"]
            | "ToDeadLetters" >> beam.Map(_undecodable_to_dead_letter)
            | "CountDeadLetters" >> metrics.CountDeadLetters()
        )
        return DecodeResult(decoded=results["decoded"], dead_letters=dead_letters)


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


class _EncodeFn(beam.DoFn):
    def __init__(
        self,
        schema: SchemaEntry,
        schema_id: int | None,
        key_fn: Callable[[Mapping[str, Any]], bytes | str | None],
    ) -> None:
        self._schema = schema
        self._schema_id = schema_id
        self._key_fn = key_fn

    def setup(self) -> None:
        self._encoder = AvroEncoder(self._schema, self._schema_id)
        self._encoded = metrics.counter(metrics.ENCODED)
        # The schema's short name (``ZipCount``, not ``property.events.ZipCount``).
        short = self._schema.name.rsplit(".", 1)[-1]
        self._encoded_schema = metrics.counter(metrics.encoded(short))

    def process(self, record: Mapping[str, Any]):
        key = self._key_fn(record)
        if isinstance(key, str):
            key = key.encode("utf-8")
        value = self._encoder.encode(record)
        self._encoded.inc()
        self._encoded_schema.inc()
        yield key, value


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
            _EncodeFn(self._schema, self._schema_id, self._key_fn)
        )
