"""AssignEventTime: element timestamps come from the payload's event_time, exactly."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.transforms.event_records import at, view
from transforms.event_time import AssignEventTime, to_epoch_ms, to_timestamp


def test_millisecond_timestamps_round_trip_without_float_error():
    epoch_ms = at(0) + 123
    assert to_epoch_ms(to_timestamp(epoch_ms)) == epoch_ms


def _timestamp_ms(decoded, timestamp=beam.DoFn.TimestampParam):
    return decoded.source.offset, to_epoch_ms(timestamp)


def test_element_timestamp_is_the_payload_event_time_not_the_record_timestamp():
    record = view(at(30) + 7, offset=1)
    # A clock-skewed producer capped the record timestamp; event time stays the payload's.
    capped = record._replace(source=record.source._replace(timestamp_ms=at(10)))
    with TestPipeline() as p:
        stamped = p | "Records" >> beam.Create([capped]) | AssignEventTime()
        assert_that(
            stamped | "ReadTimestamp" >> beam.Map(_timestamp_ms),
            equal_to([(1, at(30) + 7)]),
            label="Timestamps",
        )
