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

The package: ``errors`` (why a record is a dead letter), ``writers`` (where writer schemas come
from), ``avro`` (the wire format without Beam), ``decode`` (``DecodeAvro``) and ``encode``
(``EncodeAvro``).
"""

from __future__ import annotations

from transforms.codec.avro import (
    HEADER_SIZE,
    MAGIC_BYTE,
    AvroDecoder,
    AvroEncoder,
    decode_record,
    encode_record,
)
from transforms.codec.decode import DecodeAvro, DecodeResult
from transforms.codec.encode import EncodeAvro, FieldKey
from transforms.codec.errors import (
    STAGE,
    BadMagicByteError,
    CorruptBodyError,
    DecodeError,
    EncodeError,
    IncompatibleSchemaError,
    MissingValueError,
    TrailingBytesError,
    TruncatedHeaderError,
    UnknownSchemaIdError,
)
from transforms.codec.writers import CatalogSchemas, RegistrySchemas, WriterSchemas

__all__ = [
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "STAGE",
    "AvroDecoder",
    "AvroEncoder",
    "BadMagicByteError",
    "CatalogSchemas",
    "CorruptBodyError",
    "DecodeAvro",
    "DecodeError",
    "DecodeResult",
    "EncodeAvro",
    "EncodeError",
    "FieldKey",
    "IncompatibleSchemaError",
    "MissingValueError",
    "RegistrySchemas",
    "TrailingBytesError",
    "TruncatedHeaderError",
    "UnknownSchemaIdError",
    "WriterSchemas",
    "decode_record",
    "encode_record",
]
