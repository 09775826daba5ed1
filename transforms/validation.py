"""Validation of decoded records against the wire contract: ``ValidateEvents``, ``ValidateViews``.

The rules are plain functions (no Beam) that raise a ``ValidationError`` subclass per rule; the
transforms run them under Beam's ``with_exception_handling(exc_class=ValidationError)`` and map each
``(element, exception)`` pair into a ``DeadLetter`` with stage ``validate`` and ``error_type`` the
rule id. A record breaking several rules is dead-lettered once, for the first rule in
``EVENT_RULES`` / ``VIEW_RULES`` order (one record, one dead letter).

Rules (``docs/contract.md``):

============================  ==========================================================
rule id                       a PropertyEvent is invalid when
============================  ==========================================================
``non_empty_id``              ``event_id`` or ``property_id`` is empty or only whitespace
``known_event_type``          ``event_type`` is not one of the contract's symbols
``zip_code_format``           ``zip_code`` is not exactly five ASCII digits
``price_range``               ``price`` is not an int with 0 < price <= 1 000 000 000
``event_time_horizon``        ``event_time`` is more than 1 h ahead of the pipeline clock
============================  ==========================================================

A PropertyView is invalid when ``view_id``, ``user_id`` or ``property_id`` is empty
(``non_empty_id``).

Time: the horizon rule compares the payload's event time with the pipeline's clock at processing
time (``now_fn``, injectable; default the wall clock). Both transforms are element-wise: no
windowing, triggers or state; elements keep their timestamps and windows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import apache_beam as beam

from schemas.contract import EVENT_TYPES as CONTRACT_EVENT_TYPES
from transforms import metrics
from transforms.dead_letter import DeadLetter
from transforms.types import Decoded, KafkaRecord

STAGE = "validate"

MAX_PRICE = 1_000_000_000
EVENT_TIME_HORIZON_MS = 60 * 60 * 1000  # an event may be at most 1 h ahead of the clock

_ZIP_CODE = re.compile(r"[0-9]{5}")  # not \d: that also matches non-ASCII digits


# The contract's event types, read from the schema so the rule cannot drift from it.
EVENT_TYPES = frozenset(CONTRACT_EVENT_TYPES)


# --- rules (plain functions) --------------------------------------------------------------------


class ValidationError(Exception):
    """A record that breaks a contract rule. Each subclass is one rule; its ``error_type`` is the
    rule id that the dead letter carries.

    ``repr()`` is the bare message: Beam's ``with_exception_handling`` passes on only the
    exception's type and repr, and the type (hence the rule) is carried separately.
    """

    error_type: ClassVar[str] = "validation"

    def __repr__(self) -> str:
        return str(self)


class EmptyIdError(ValidationError):
    error_type = "non_empty_id"


class UnknownEventTypeError(ValidationError):
    error_type = "known_event_type"


class ZipCodeFormatError(ValidationError):
    error_type = "zip_code_format"


class PriceRangeError(ValidationError):
    error_type = "price_range"


class EventTimeHorizonError(ValidationError):
    error_type = "event_time_horizon"


def check_ids(record: Mapping[str, Any], fields: tuple[str, ...]) -> None:
    """``EmptyIdError`` naming the first of ``fields`` that is missing, not a str, or blank."""
    for field in fields:
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            raise EmptyIdError(f"{field} is empty: {value!r}")


def check_event_type(event: Mapping[str, Any]) -> None:
    value = event.get("event_type")
    if value not in EVENT_TYPES:
        raise UnknownEventTypeError(f"event_type {value!r} is not one of {sorted(EVENT_TYPES)}")


def check_zip_code(event: Mapping[str, Any]) -> None:
    value = event.get("zip_code")
    if not isinstance(value, str) or not _ZIP_CODE.fullmatch(value):
        raise ZipCodeFormatError(f"zip_code {value!r} is not five digits")


def check_price(event: Mapping[str, Any]) -> None:
    value = event.get("price")
    # bool is an int subclass; True is not a price.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_PRICE:
        raise PriceRangeError(f"price {value!r} is not in (0, {MAX_PRICE:_}]")


def check_event_time(event: Mapping[str, Any], now_ms: int) -> None:
    value = event.get("event_time")
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventTimeHorizonError(f"event_time {value!r} is not epoch milliseconds")
    ahead_ms = value - now_ms
    if ahead_ms > EVENT_TIME_HORIZON_MS:
        raise EventTimeHorizonError(
            f"event_time {value} is {ahead_ms} ms ahead of the pipeline clock {now_ms} "
            f"(at most {EVENT_TIME_HORIZON_MS} ms allowed)"
        )


EVENT_ID_FIELDS = ("event_id", "property_id")
VIEW_ID_FIELDS = ("view_id", "user_id", "property_id")


def check_property_event(event: Mapping[str, Any], now_ms: int) -> None:
    """Raises the ``ValidationError`` of the first rule ``event`` breaks; returns if it is valid.
    ``now_ms`` is the pipeline clock in epoch ms."""
    check_ids(event, EVENT_ID_FIELDS)
    check_event_type(event)
    check_zip_code(event)
    check_price(event)
    check_event_time(event, now_ms)


def check_property_view(view: Mapping[str, Any]) -> None:
    """Raises ``EmptyIdError`` if ``view`` lacks an id; returns if it is valid."""
    check_ids(view, VIEW_ID_FIELDS)


def wall_clock_ms() -> int:
    """The wall clock in epoch milliseconds (the default pipeline clock)."""
    return time.time_ns() // 1_000_000


# --- Beam ---------------------------------------------------------------------------------------


class ValidationResult(NamedTuple):
    """``valid``: the records that pass every rule, unchanged; ``dead_letters``: one
    ``DeadLetter`` (stage ``validate``, ``error_type`` the rule id) per other record."""

    valid: beam.PCollection[Decoded]
    dead_letters: beam.PCollection[DeadLetter]


class _CheckEventFn(beam.DoFn):
    def __init__(self, now_fn: Callable[[], int]) -> None:
        self._now_fn = now_fn

    def setup(self) -> None:
        self._valid = metrics.counter(metrics.VALID)

    def process(self, record: Decoded):
        check_property_event(record.payload, self._now_fn())
        self._valid.inc()
        yield record


class _CheckViewFn(beam.DoFn):
    def setup(self) -> None:
        self._valid = metrics.counter(metrics.VALID)

    def process(self, record: Decoded):
        check_property_view(record.payload)
        self._valid.inc()
        yield record


class _InvalidToDeadLetterFn(beam.DoFn):
    """Turns ``with_exception_handling``'s ``(Decoded or KafkaRecord, (type, repr, traceback))``
    into a ``DeadLetter`` of the original bytes, counting ``invalid.<rule>``."""

    def setup(self) -> None:
        self._counters: dict[str, Any] = {}

    def process(self, failed: tuple[Decoded | KafkaRecord, tuple[type, str, list[str]]]):
        record, error = failed
        # A Decoded record (ValidateEvents/ValidateViews), or the KafkaRecord itself when the
        # validation ran in one step with the decoding (transforms.ingest.DecodeAndValidate).
        source = record.source if isinstance(record, Decoded) else record
        letter = DeadLetter.from_error(STAGE, source, error)
        c = self._counters.get(letter.error_type)
        if c is None:
            c = self._counters[letter.error_type] = metrics.counter(
                metrics.invalid(letter.error_type)
            )
        c.inc()
        yield letter


class _Validate(beam.PTransform[beam.PCollection[Decoded], ValidationResult]):
    """Shared wiring: run a checking DoFn under Beam's exception handling, dead-letter failures."""

    def __init__(self, check_fn: beam.DoFn, threshold: float, label: str | None) -> None:
        super().__init__(label)
        if not 0.0 < threshold <= 1.0:
            raise ValueError(
                f"threshold must be in (0, 1] (the largest tolerated fraction of invalid "
                f"records; 1.0 never fails the job), got {threshold}"
            )
        self._check_fn = check_fn
        self._threshold = threshold

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def check_fn(self) -> beam.DoFn:
        """The checking DoFn on its own (it raises ``ValidationError`` for a broken rule), for
        ``transforms.ingest.DecodeAndValidate``, which runs a decoding and it in one step."""
        return self._check_fn

    def invalid_to_dead_letters(self) -> beam.PTransform:
        """``with_exception_handling``'s ``(Decoded, error)`` pairs of this validation to
        ``DeadLetter``, counting ``invalid.<rule>``."""
        return beam.ParDo(_InvalidToDeadLetterFn())

    def expand(self, records: beam.PCollection[Decoded]) -> ValidationResult:
        results = records | "Check" >> beam.ParDo(self._check_fn).with_exception_handling(
            main_tag="valid",
            dead_letter_tag="invalid",
            exc_class=ValidationError,
            threshold=self._threshold,
        )
        dead_letters = (
            results["invalid"]
            | "ToDeadLetters" >> beam.ParDo(_InvalidToDeadLetterFn())
            | "CountDeadLetters" >> metrics.CountDeadLetters()
        )
        return ValidationResult(valid=results["valid"], dead_letters=dead_letters)


class ValidateEvents(_Validate):
    """Splits decoded PropertyEvents into valid ones and dead letters by the contract's rules
    (module docstring).

    Args:
      now_fn: the pipeline clock, epoch ms, called once per record at processing time (default
        the wall clock); must be picklable. Tests pass a fixed clock.
      threshold: the largest fraction of invalid records tolerated before the job fails (a
        systemic bug rather than bad data); 1.0 (default) never fails. Below 1.0 Beam counts per
        window of the input, so an unbounded input in the global window needs a windowed input.
    """

    def __init__(
        self,
        now_fn: Callable[[], int] = wall_clock_ms,
        *,
        threshold: float = 1.0,
        label: str | None = None,
    ) -> None:
        if not callable(now_fn):
            raise ValueError("now_fn must be a callable returning epoch ms, e.g. wall_clock_ms")
        super().__init__(_CheckEventFn(now_fn), threshold, label)


class ValidateViews(_Validate):
    """Splits decoded PropertyViews into valid ones and dead letters (``non_empty_id``).

    Args:
      threshold: as for ``ValidateEvents``.
    """

    def __init__(self, *, threshold: float = 1.0, label: str | None = None) -> None:
        super().__init__(_CheckViewFn(), threshold, label)
