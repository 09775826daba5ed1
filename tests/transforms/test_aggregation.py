"""CountByZip running counts (late-but-allowed corrections), high-value and event-type filters."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from tests.transforms.event_records import at, property_event, streaming_test_pipeline, ts
from transforms.aggregation import (
    CountByZip,
    FilterEventType,
    HighValueListings,
    ListingUpdates,
    is_high_value,
    running_zip_counts,
    zip_count,
)


def elements(*events):
    return [beam.window.TimestampedValue(e, ts(e.payload["event_time"])) for e in events]


def ids(decoded):
    return decoded.payload["event_id"]


def test_count_by_zip_emits_an_update_per_event_and_a_late_event_corrects_the_count():
    stream = (
        TestStream()
        # on time
        .add_elements(elements(property_event(at(1), offset=0), property_event(at(2), offset=1)))
        .add_elements(elements(property_event(at(3), zip_code="10001", offset=2)))
        .advance_watermark_to(ts(at(90)))
        # late but allowed (the gate passed it): counted, the zip's update corrects the count
        .add_elements(elements(property_event(at(40), offset=3)))
        .advance_watermark_to_infinity()
    )
    with streaming_test_pipeline() as p:
        counts = p | "Events" >> stream | CountByZip()
        assert_that(
            counts,
            equal_to(
                [
                    zip_count("94107", 1, at(1)),
                    zip_count("94107", 2, at(2)),
                    zip_count("10001", 1, at(3)),
                    # the late event raises the count; last_event_time stays the largest seen
                    zip_count("94107", 3, at(40)),
                ]
            ),
            label="Updates",
        )


def test_count_by_zip_counts_events_already_in_time_windows():
    events = [property_event(at(m), offset=m) for m in (5, 65, 125)]
    with TestPipeline() as p:
        counts = (
            p
            | "Events" >> beam.Create(elements(*events))
            | "Hourly" >> beam.WindowInto(beam.window.FixedWindows(3600))
            | CountByZip()
        )
        # One running count across the windows, not one per window.
        assert_that(
            counts | "Counts" >> beam.Map(lambda z: z["count"]),
            equal_to([1, 2, 3]),
            label="Running",
        )


def test_running_zip_counts_number_the_events_and_keep_the_largest_event_time():
    assert list(running_zip_counts(("94107", [at(5), at(2), at(9)]))) == [
        zip_count("94107", 1, at(5)),
        zip_count("94107", 2, at(5)),
        zip_count("94107", 3, at(9)),
    ]


def test_bounded_count_by_zip_emits_the_stateful_counts_updates_in_one_grouping():
    """On a bounded input the grouped variant gives what the stateful DoFn gives: an update per
    event, counts 1..n per zip, each zip's largest count carrying its largest event time."""
    events = [
        property_event(at(m), zip_code=zip_code, offset=i)
        for i, (m, zip_code) in enumerate(
            [(5, "94107"), (65, "10001"), (1, "94107"), (125, "94107"), (7, "10001")]
        )
    ]

    def final_and_counts(updates):
        return sorted((u["zip_code"], u["count"]) for u in updates), {
            u["zip_code"]: u["last_event_time"]
            for u in updates
            if u["count"] == sum(1 for v in updates if v["zip_code"] == u["zip_code"])
        }

    for bounded in (False, True):
        with TestPipeline() as p:
            counts = (
                p
                | "Events" >> beam.Create(elements(*events))
                | "Hourly" >> beam.WindowInto(beam.window.FixedWindows(3600))
                | CountByZip(bounded=bounded)
                | beam.combiners.ToList()
            )
            assert_that(
                counts | beam.Map(final_and_counts),
                equal_to(
                    [
                        (
                            [("10001", 1), ("10001", 2), ("94107", 1), ("94107", 2), ("94107", 3)],
                            {"10001": at(65), "94107": at(125)},
                        )
                    ]
                ),
            )
    grouped = beam.Pipeline()
    _ = grouped | beam.Create([property_event(at(5))]) | "Count" >> CountByZip(bounded=True)
    steps = {t.unique_name for t in grouped.to_runner_api().components.transforms.values()}
    assert {"Count/GroupPerZip", "Count/RunningCounts"} <= steps
    assert "Count/RunningCount" not in steps


def test_count_by_zip_rewindows_only_an_input_not_in_the_default_global_window():
    def steps(pipeline):
        return {t.unique_name for t in pipeline.to_runner_api().components.transforms.values()}

    global_input = beam.Pipeline()
    _ = global_input | beam.Create([property_event(at(5))]) | "Count" >> CountByZip()
    windowed_input = beam.Pipeline()
    _ = (
        windowed_input
        | beam.Create([property_event(at(5))])
        | beam.WindowInto(beam.window.FixedWindows(3600))
        | "Count" >> CountByZip()
    )
    assert "Count/GlobalWindow" not in steps(global_input)
    assert "Count/GlobalWindow" in steps(windowed_input)


def test_price_must_be_strictly_above_the_threshold():
    assert is_high_value({"price": 500_001}, 500_000)
    assert not is_high_value({"price": 500_000}, 500_000)


def test_high_value_listings_keep_only_prices_above_the_threshold():
    events = [
        property_event(at(0), price=500_000, offset=0),
        property_event(at(0), price=500_001, offset=1),
        property_event(at(0), price=2_000_000, offset=2),
    ]
    with TestPipeline() as p:
        high = p | "Events" >> beam.Create(events) | HighValueListings()
        custom = p | "Events2" >> beam.Create(events) | "Over1M" >> HighValueListings(1_000_000)
        assert_that(high | "Ids" >> beam.Map(ids), equal_to(["e-0-1", "e-0-2"]), label="Default")
        assert_that(custom | "Ids2" >> beam.Map(ids), equal_to(["e-0-2"]), label="Custom")


def test_listing_updates_keep_only_listing_updated_events():
    events = [
        property_event(at(0), event_type=t, offset=i)
        for i, t in enumerate(
            ["LISTING_CREATED", "LISTING_UPDATED", "PRICE_CHANGED", "LISTING_UPDATED"]
        )
    ]
    with TestPipeline() as p:
        updates = p | "Events" >> beam.Create(events) | ListingUpdates()
        assert_that(updates | "Ids" >> beam.Map(ids), equal_to(["e-0-1", "e-0-3"]), label="Kept")


def test_unknown_event_type_and_negative_threshold_are_rejected():
    with pytest.raises(ValueError, match="event_type must be one of"):
        FilterEventType("LISTING_UPDATE")
    with pytest.raises(ValueError, match="threshold"):
        HighValueListings(-1)
