"""Why a record cannot be decoded or encoded: one ``DecodeError`` subclass per dead-letter
reason (its ``error_type``), and ``EncodeError``."""

from __future__ import annotations

from typing import Any, ClassVar

STAGE = "decode"


# Error messages carry the third-party reason, cut so a dead letter stays small (fastavro's
# resolution errors print both schemas in full).
MAX_REASON_CHARS = 300


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


def short_reason(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, cut at ``MAX_REASON_CHARS`` (a dead letter stays small)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "..."
