"""``DecodeAndValidate``: a ``DecodeAvro`` and a validation (``ValidateEvents``,
``ValidateViews``) run as one step.

Each record is decoded and its payload checked in one DoFn call, under one Beam
``with_exception_handling``, instead of two steps each with its own: a record crosses one DoFn
and one exception-handling wrapper less (docs/performance.md, change 20). The outputs are those of
the two transforms applied one after the other: ``valid`` the ``Decoded`` records that pass every
rule, ``dead_letters`` one ``DeadLetter`` per other record — stage ``decode`` (``error_type`` the
``DecodeError`` subclass) for an undecodable record, stage ``validate`` (``error_type`` the rule
id) for an invalid one — with the same counters (``decoded``, ``valid``, ``invalid.<rule>``,
``dead_lettered...``). Element-wise: no windowing, triggers or state.

The failure threshold of the step is the smaller of the two transforms' (Beam counts the
failures of both together).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import apache_beam as beam

from transforms import metrics
from transforms.codec import DecodeAvro
from transforms.codec.decode import undecodable_to_dead_letter
from transforms.codec.errors import DecodeError
from transforms.dead_letter import DeadLetter
from transforms.types import Decoded, KafkaRecord
from transforms.validation import ValidateEvents, ValidateViews, ValidationError

_DECODE_FAILED, _INVALID = 0, 1


class DecodeAndValidateResult(NamedTuple):
    """``valid``: Decoded records that decode and pass every rule; ``dead_letters``: one
    ``DeadLetter`` per other record (stage ``decode`` or ``validate``)."""

    valid: beam.PCollection[Decoded]
    dead_letters: beam.PCollection[DeadLetter]


class _DecodeAndCheckFn(beam.DoFn):
    """The decoding DoFn, then the checking DoFn on its output, in one call."""

    def __init__(self, decode_fn: beam.DoFn, check_fn: beam.DoFn) -> None:
        self._decode_fn = decode_fn
        self._check_fn = check_fn

    def setup(self) -> None:
        self._decode_fn.setup()
        self._check_fn.setup()
        self._decode = self._decode_fn.process
        self._check = self._check_fn.process

    def process(self, record: KafkaRecord):
        check = self._check
        for decoded in self._decode(record):
            yield from check(decoded)

    def teardown(self) -> None:
        self._decode_fn.teardown()
        self._check_fn.teardown()


def _failure_kind(failed: tuple[KafkaRecord, tuple[type, str, list[str]]], _n: int) -> int:
    return _DECODE_FAILED if issubclass(failed[1][0], DecodeError) else _INVALID


class DecodeAndValidate(beam.PTransform[beam.PCollection[KafkaRecord], DecodeAndValidateResult]):
    """``decode`` then ``validate`` as one step (see the module docstring).

    Args:
      decode: the ``DecodeAvro`` to run (reader schema, registry, threshold).
      validate: the ``ValidateEvents`` or ``ValidateViews`` to run on what it decodes.
    """

    def __init__(self, decode: DecodeAvro, validate: ValidateEvents | ValidateViews) -> None:
        super().__init__()
        if not isinstance(decode, DecodeAvro):
            raise ValueError(f"decode must be a DecodeAvro, got {type(decode).__name__}")
        if not isinstance(validate, ValidateEvents | ValidateViews):
            raise ValueError(
                f"validate must be a ValidateEvents or ValidateViews, got {type(validate).__name__}"
            )
        self._decode = decode
        self._validate = validate

    def expand(self, records: beam.PCollection[KafkaRecord]) -> DecodeAndValidateResult:
        results = records | "DecodeAndCheck" >> beam.ParDo(
            _DecodeAndCheckFn(self._decode.decode_fn(), self._validate.check_fn)
        ).with_exception_handling(
            main_tag="valid",
            dead_letter_tag="failed",
            exc_class=(DecodeError, ValidationError),
            threshold=min(self._decode.threshold, self._validate.threshold),
        )
        undecodable, invalid = results["failed"] | "ByKind" >> beam.Partition(_failure_kind, 2)
        letters: Any = (
            undecodable | "UndecodableToDeadLetters" >> beam.Map(undecodable_to_dead_letter),
            invalid | "InvalidToDeadLetters" >> self._validate.invalid_to_dead_letters(),
        )
        dead_letters = (
            letters
            | "DeadLetters" >> beam.Flatten()
            | "CountDeadLetters" >> metrics.CountDeadLetters()
        )
        return DecodeAndValidateResult(valid=results["valid"], dead_letters=dead_letters)
