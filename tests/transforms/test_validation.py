"""Validation rules (plain functions) and the ValidateEvents / ValidateViews transforms."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

from tests.transforms.beam_results import counter, letter_summary
from tests.transforms.event_records import event_payload, view_payload
from transforms import metrics
from transforms.dead_letter import DeadLetter
from transforms.types import Decoded, KafkaRecord
from transforms.validation import (
    EVENT_TIME_HORIZON_MS,
    EVENT_TYPES,
    MAX_PRICE,
    EmptyIdError,
    EventTimeHorizonError,
    PriceRangeError,
    UnknownEventTypeError,
    ValidateEvents,
    ValidateViews,
    ValidationError,
    ZipCodeFormatError,
    check_property_event,
    check_property_view,
    wall_clock_ms,
)

NOW = 1_767_225_600_000  # the pipeline clock in these tests: 2026-01-01T00:00:00Z


class FixedClock:
    """A pipeline clock stopped at ``now_ms`` (picklable, for the DoFn)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def property_event(**overrides: Any) -> dict[str, Any]:
    return event_payload(**{"event_time": NOW - 1000, **overrides})


def property_view(**overrides: Any) -> dict[str, Any]:
    return view_payload(**{"event_time": NOW, **overrides})


def decoded(payload: dict[str, Any], offset: int, topic: str = "property-events") -> Decoded:
    source = KafkaRecord(b"key", b"\x00\x00\x00\x00\x01raw", topic, 0, offset, NOW - 5)
    return Decoded(payload, 1, source)


# --- rules --------------------------------------------------------------------------------------


def test_a_contract_valid_event_passes() -> None:
    check_property_event(property_event(), NOW)


@pytest.mark.parametrize("field", ["event_id", "property_id"])
@pytest.mark.parametrize("value", ["", "   ", None])
def test_an_empty_event_id_breaks_non_empty_id(field: str, value: Any) -> None:
    with pytest.raises(EmptyIdError, match=field):
        check_property_event(property_event(**{field: value}), NOW)
    assert EmptyIdError.error_type == "non_empty_id"


@pytest.mark.parametrize("zip_code", ["9411", "941100", "9411a", " 94110", "٩٤١١٠", "", None])
def test_a_zip_code_that_is_not_five_ascii_digits_breaks_zip_code_format(zip_code: Any) -> None:
    with pytest.raises(ZipCodeFormatError, match=r"zip_code .* is not five digits") as info:
        check_property_event(property_event(zip_code=zip_code), NOW)
    assert repr(zip_code) in str(info.value)


@pytest.mark.parametrize("zip_code", ["00000", "99999", "02134"])
def test_five_digit_zip_codes_pass(zip_code: str) -> None:
    check_property_event(property_event(zip_code=zip_code), NOW)


@pytest.mark.parametrize("price", [0, -1, MAX_PRICE + 1, True, 1.5, None])
def test_a_price_outside_zero_to_one_billion_breaks_price_range(price: Any) -> None:
    with pytest.raises(PriceRangeError, match="price"):
        check_property_event(property_event(price=price), NOW)


@pytest.mark.parametrize("price", [1, MAX_PRICE])
def test_prices_at_the_bounds_pass(price: int) -> None:
    check_property_event(property_event(price=price), NOW)


def test_event_time_exactly_one_hour_ahead_passes_one_ms_more_breaks_the_horizon() -> None:
    check_property_event(property_event(event_time=NOW + EVENT_TIME_HORIZON_MS), NOW)
    with pytest.raises(EventTimeHorizonError, match="3600001 ms ahead"):
        check_property_event(property_event(event_time=NOW + EVENT_TIME_HORIZON_MS + 1), NOW)


def test_old_event_times_pass_the_horizon() -> None:
    check_property_event(property_event(event_time=0), NOW)


def test_an_unknown_event_type_breaks_known_event_type() -> None:
    assert {"LISTING_CREATED", "LISTING_UPDATED", "PRICE_CHANGED", "LISTING_REMOVED"} == (
        EVENT_TYPES
    )
    with pytest.raises(UnknownEventTypeError, match="'LISTING_SOLD'"):
        check_property_event(property_event(event_type="LISTING_SOLD"), NOW)


def test_the_first_broken_rule_is_reported() -> None:
    both = property_event(zip_code="x", price=0)
    with pytest.raises(ZipCodeFormatError):
        check_property_event(both, NOW)


@pytest.mark.parametrize("field", ["view_id", "user_id", "property_id"])
def test_a_view_without_an_id_breaks_non_empty_id(field: str) -> None:
    check_property_view(property_view())
    with pytest.raises(EmptyIdError, match=field):
        check_property_view(property_view(**{field: ""}))


def test_the_default_clock_is_the_wall_clock_in_ms() -> None:
    import time

    before = time.time() * 1000
    now = wall_clock_ms()
    assert before - 1 <= now <= time.time() * 1000 + 1


_ids = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")


@given(
    event_id=_ids,
    property_id=_ids,
    event_type=st.sampled_from(sorted(EVENT_TYPES)),
    zip_code=st.from_regex(r"\A[0-9]{5}\Z"),
    price=st.integers(min_value=1, max_value=MAX_PRICE),
    ahead_ms=st.integers(min_value=-(10**12), max_value=EVENT_TIME_HORIZON_MS),
)
def test_any_event_within_the_rules_passes(
    event_id: str, property_id: str, event_type: str, zip_code: str, price: int, ahead_ms: int
) -> None:
    check_property_event(
        property_event(
            event_id=event_id,
            property_id=property_id,
            event_type=event_type,
            zip_code=zip_code,
            price=price,
            event_time=NOW + ahead_ms,
        ),
        NOW,
    )


@given(price=st.integers().filter(lambda p: not 0 < p <= MAX_PRICE))
def test_any_price_outside_the_range_is_rejected(price: int) -> None:
    with pytest.raises(PriceRangeError):
        check_property_event(property_event(price=price), NOW)


# --- transforms ---------------------------------------------------------------------------------


def test_validate_events_splits_valid_events_from_dead_letters_naming_the_rule() -> None:
    records = [
        decoded(property_event(), 0),
        decoded(property_event(event_id=""), 1),
        decoded(property_event(zip_code="123"), 2),
        decoded(property_event(price=0), 3),
        decoded(property_event(event_time=NOW + EVENT_TIME_HORIZON_MS + 1), 4),
        decoded(property_event(event_type="LISTING_SOLD"), 5),
        decoded(property_event(event_id="e-7", event_time=NOW + EVENT_TIME_HORIZON_MS), 6),
    ]
    p = TestPipeline()
    result = (
        p | "Records" >> beam.Create(records) | "Validate" >> ValidateEvents(now_fn=FixedClock(NOW))
    )
    assert_that(result.valid, equal_to([records[0], records[6]]), label="AssertValid")
    raw = records[0].source.value
    assert_that(
        result.dead_letters | "Summarize" >> beam.Map(letter_summary),
        equal_to(
            [
                ("validate", "non_empty_id", 1, raw),
                ("validate", "zip_code_format", 2, raw),
                ("validate", "price_range", 3, raw),
                ("validate", "event_time_horizon", 4, raw),
                ("validate", "known_event_type", 5, raw),
            ]
        ),
        label="AssertDeadLetters",
    )
    run = p.run()
    run.wait_until_finish()

    assert counter(run, metrics.VALID) == 2
    for rule in [
        "non_empty_id",
        "zip_code_format",
        "price_range",
        "event_time_horizon",
        "known_event_type",
    ]:
        assert counter(run, metrics.invalid(rule)) == 1, rule
        assert counter(run, metrics.dead_lettered("validate", rule)) == 1, rule
    assert counter(run, metrics.dead_lettered("validate")) == 5


def test_validate_events_dead_letter_names_field_and_value_and_keeps_the_source() -> None:
    record = decoded(property_event(zip_code="9411"), 42)
    with TestPipeline() as p:
        result = (
            p
            | "Records" >> beam.Create([record])
            | "Validate" >> ValidateEvents(now_fn=FixedClock(NOW))
        )
        assert_that(result.valid, equal_to([]), label="AssertNoneValid")
        assert_that(
            result.dead_letters,
            equal_to(
                [
                    DeadLetter.of(
                        "validate",
                        "zip_code_format",
                        "zip_code '9411' is not five digits",
                        record.source,
                    )
                ]
            ),
            label="AssertDeadLetter",
        )


def test_validate_views_dead_letters_views_without_ids() -> None:
    records = [
        decoded(property_view(), 0, "property-views"),
        decoded(property_view(user_id=" "), 1, "property-views"),
    ]
    with TestPipeline() as p:
        result = p | "Records" >> beam.Create(records) | "Validate" >> ValidateViews()
        assert_that(result.valid, equal_to([records[0]]), label="AssertValid")
        assert_that(
            result.dead_letters | "Summarize" >> beam.Map(letter_summary),
            equal_to([("validate", "non_empty_id", 1, records[1].source.value)]),
            label="AssertDeadLetters",
        )


def test_validate_events_threshold_fails_the_job_on_a_systemic_problem() -> None:
    records = [decoded(property_event(price=0), i) for i in range(9)]
    records.append(decoded(property_event(), 9))
    p = TestPipeline()
    result = (
        p
        | "Records" >> beam.Create(records)
        | "Validate" >> ValidateEvents(now_fn=FixedClock(NOW), threshold=0.5)
    )
    assert_that(result.valid, equal_to([records[-1]]), label="AssertValid")
    with pytest.raises(Exception, match="exceeded threshold"):
        p.run().wait_until_finish()


def test_validate_events_below_the_threshold_succeeds() -> None:
    records = [decoded(property_event(price=0), 0)]
    records += [decoded(property_event(), i) for i in range(1, 10)]
    with TestPipeline() as p:
        result = (
            p
            | "Records" >> beam.Create(records)
            | "Validate" >> ValidateEvents(now_fn=FixedClock(NOW), threshold=0.5)
        )
        assert_that(result.valid, equal_to(records[1:]), label="AssertValid")
        assert_that(
            result.dead_letters | "Summarize" >> beam.Map(letter_summary),
            equal_to([("validate", "price_range", 0, records[0].source.value)]),
            label="AssertDeadLetters",
        )


def test_validation_errors_carry_the_rule_id_and_a_bare_message() -> None:
    error = ZipCodeFormatError("zip_code 'x' is not five digits")
    assert repr(error) == "zip_code 'x' is not five digits"
    assert isinstance(error, ValidationError)
    assert error.error_type == "zip_code_format"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ValidateEvents(threshold=0), "threshold must be in"),
        (lambda: ValidateEvents(threshold=1.5), "threshold must be in"),
        (lambda: ValidateEvents(now_fn=123), "now_fn must be a callable"),  # type: ignore[arg-type]
        (lambda: ValidateViews(threshold=-1), "threshold must be in"),
    ],
)
def test_validate_rejects_bad_arguments_saying_what_to_fix(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
