"""``DecodeAndValidate``: decoding and validation in one step give what the two transforms give
one after the other — the same valid records, dead letters and counters."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.transforms.beam_results import counter_totals, letter_summary
from tests.transforms.event_records import T0_MS, event_payload, view_payload
from transforms.codec import DecodeAvro, encode_record
from transforms.ingest import DecodeAndValidate
from transforms.types import KafkaRecord
from transforms.validation import ValidateEvents, ValidateViews

NOW = T0_MS + 60_000


class FixedClock:
    """A pipeline clock stopped at ``now_ms`` (picklable, for the DoFn)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def _record(value: bytes | None, offset: int, topic: str = "property-events") -> KafkaRecord:
    return KafkaRecord(b"p-1", value, topic, 0, offset, T0_MS)


def _events() -> list[KafkaRecord]:
    good = encode_record(event_payload(), "PropertyEvent")
    values: list[bytes | None] = [
        good,
        b"\x01\x00\x00\x00\x01garbage",  # bad magic byte
        good[:7],  # truncated body
        encode_record(event_payload(zip_code="123"), "PropertyEvent"),
        encode_record(event_payload(event_id="e-2", price=0), "PropertyEvent"),
        None,  # a tombstone: no value to decode
        encode_record(event_payload(event_id="e-3"), "PropertyEvent"),
        encode_record(view_payload(), "PropertyView"),  # a view on the events topic
    ]
    return [_record(value, offset) for offset, value in enumerate(values)]


def _views() -> list[KafkaRecord]:
    values = [
        encode_record(view_payload(), "PropertyView"),
        encode_record(view_payload(user_id=" "), "PropertyView"),
        b"\x00\x00",
        encode_record(view_payload(view_id="v-2"), "PropertyView"),
    ]
    return [_record(value, offset, "property-views") for offset, value in enumerate(values)]


@pytest.mark.parametrize(
    ("records", "reader", "make_validate"),
    [
        (_events, "PropertyEvent", lambda: ValidateEvents(now_fn=FixedClock(NOW))),
        (_views, "PropertyView", ValidateViews),
    ],
    ids=["events", "views"],
)
def test_one_step_gives_the_outputs_and_counters_of_the_two(records, reader, make_validate):
    results = {}
    for fused in (False, True):
        p = TestPipeline()
        created = p | "Records" >> beam.Create(records())
        if fused:
            out = created | "DecodeAndValidate" >> DecodeAndValidate(
                DecodeAvro(reader), make_validate()
            )
            valid, letters = out.valid, out.dead_letters
        else:
            decoded = created | "Decode" >> DecodeAvro(reader)
            checked = decoded.decoded | "Validate" >> make_validate()
            valid = checked.valid
            letters = (decoded.dead_letters, checked.dead_letters) | "All" >> beam.Flatten()
        results[fused] = (p, valid, letters)

    # What both pipelines must give, computed without Beam from the same plain functions.
    expected = _expected(records(), reader)
    for name, (_p, valid, letters) in {"two": results[False], "one": results[True]}.items():
        assert_that(
            valid | f"ValidOffsets{name}" >> beam.Map(lambda d: d.source.offset),
            equal_to(expected[0]),
            label=f"Valid{name}",
        )
        assert_that(
            letters | f"Letters{name}" >> beam.Map(letter_summary),
            equal_to(expected[1]),
            label=f"DeadLetters{name}",
        )
    counters = {}
    for fused, (p, _, _) in results.items():
        run = p.run()
        run.wait_until_finish()
        counters[fused] = counter_totals(run)
    assert counters[True] == counters[False]
    assert counters[True]  # the counters were committed at all


def _expected(records: list[KafkaRecord], reader: str) -> tuple[list, list]:
    """Valid offsets and dead-letter summaries by the plain functions: decode, then check."""
    from transforms.codec import DecodeError, decode_record
    from transforms.validation import ValidationError, check_property_event, check_property_view

    valid, letters = [], []
    for record in records:
        try:
            _, payload = decode_record(record.value, reader)
        except DecodeError as exc:
            letters.append(("decode", type(exc).__name__, record.offset, record.value))
            continue
        try:
            if reader == "PropertyEvent":
                check_property_event(payload, NOW)
            else:
                check_property_view(payload)
        except ValidationError as exc:
            letters.append(("validate", exc.error_type, record.offset, record.value))
            continue
        valid.append(record.offset)
    return valid, letters


def test_it_takes_a_decode_avro_and_a_validation():
    with pytest.raises(ValueError, match="decode must be a DecodeAvro"):
        DecodeAndValidate(ValidateViews(), ValidateViews())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="validate must be a ValidateEvents or ValidateViews"):
        DecodeAndValidate(DecodeAvro("PropertyView"), beam.Map(str))  # type: ignore[arg-type]
