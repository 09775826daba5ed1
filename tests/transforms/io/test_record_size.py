"""Records too large for Kafka become dead letters before the write (transforms/io/record_size)."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas import CATALOG
from tests.transforms.event_records import event_payload
from transforms.codec import FieldKey
from transforms.codec.avro import AvroEncoder
from transforms.dead_letter import DeadLetter
from transforms.io.record_size import (
    DEFAULT_MAX_REQUEST_SIZE,
    ERROR_TYPE,
    RECORD_OVERHEAD_BYTES,
    STAGE,
    EncodeForTopic,
    FitRecordValue,
    max_record_bytes,
    record_size,
)
from transforms.types import Decoded, KafkaRecord

LIMIT = 4_096
TOPIC = "enriched-out"


def decoded(offset: int, **fields) -> Decoded:
    payload = event_payload(**fields)
    source = KafkaRecord(b"p-1", b"\x00raw", "events-in", 3, offset, 1_000)
    return Decoded(payload, 1, source)


def encoded_size(record: Decoded) -> int:
    value = AvroEncoder(CATALOG.latest("PropertyEvent")).encode(record.payload)
    return record_size(FieldKey("property_id")(record.payload), value)


def test_the_limit_is_the_producers_max_request_size_with_kafkas_default() -> None:
    assert max_record_bytes({}) == DEFAULT_MAX_REQUEST_SIZE == 1_048_576
    assert max_record_bytes({"max.request.size": "2097152"}) == 2_097_152
    with pytest.raises(ValueError, match=r"max\.request\.size must be a number of bytes"):
        max_record_bytes({"max.request.size": "1MB"})
    with pytest.raises(ValueError, match="must be > 82 bytes"):
        max_record_bytes({"max.request.size": "10"})


def test_a_record_at_the_limit_is_written_one_byte_more_is_a_dead_letter_of_its_input() -> None:
    # The longest event id that fits (its length prefix grows with it: count down to it).
    pad = LIMIT - encoded_size(decoded(0, event_id=""))
    while encoded_size(decoded(0, event_id="e" * pad)) > LIMIT:
        pad -= 1
    at_limit = decoded(7, event_id="e" * pad)
    over = decoded(8, event_id="e" * (pad + 1))
    assert encoded_size(at_limit) == LIMIT
    assert encoded_size(over) > LIMIT
    with TestPipeline() as p:
        sized = (
            p
            | beam.Create([at_limit, over])
            | EncodeForTopic("PropertyEvent", FieldKey("property_id"), TOPIC, LIMIT)
        )
        assert_that(
            sized.fits | "Sizes" >> beam.Map(lambda kv: record_size(*kv)),
            equal_to([LIMIT]),
            label="AtTheLimitFits",
        )
        assert_that(
            sized.too_large
            | "Letters"
            >> beam.Map(lambda d: (d.stage, d.error_type, d.topic, d.partition, d.offset, d.value)),
            equal_to([(STAGE, ERROR_TYPE, "events-in", 3, 8, b"\x00raw")]),
            label="OverIsTheInputRecord",
        )
        assert_that(
            sized.too_large | "Messages" >> beam.Map(lambda d: d.error_message),
            equal_to(
                [
                    f"the PropertyEvent record for {TOPIC} would be {encoded_size(over)} bytes "
                    f"(key 3, value {encoded_size(over) - 3 - RECORD_OVERHEAD_BYTES}), above the "
                    f"producer's max.request.size {LIMIT}: Kafka would refuse it "
                    "(RecordTooLargeException)"
                ]
            ),
            label="MessageSaysTopicSizeAndLimit",
        )


def test_a_dead_letter_too_large_for_the_topic_keeps_its_coordinates_without_its_value() -> None:
    small = decoded(1).source
    large = small._replace(offset=2, value=b"v" * LIMIT)
    letters = [
        DeadLetter.of("decode", "ShortRecordError", "short", r).to_avro() for r in (small, large)
    ]
    large_size = record_size(b"p-1", AvroEncoder(CATALOG.latest("DeadLetter")).encode(letters[1]))
    with TestPipeline() as p:
        fitted = p | beam.Create(letters) | FitRecordValue("DeadLetter", "key", LIMIT)
        assert_that(
            fitted | beam.Map(lambda d: (d["offset"], d["key"], d["value"], d["error_message"])),
            equal_to(
                [
                    (1, b"p-1", b"\x00raw", "short"),
                    (
                        2,
                        b"p-1",
                        None,
                        f"short [value of {LIMIT} bytes omitted: the record would be "
                        f"{large_size} bytes, above the producer's max.request.size {LIMIT}; "
                        "the original is at events-in/3/2]",
                    ),
                ]
            ),
        )
