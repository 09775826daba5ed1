"""The time transforms composed as the pipeline does: gate → event time → hourly counts.

What the gate passes, Beam's windows must count (their allowed lateness covers the gate's), so
for every property: views counted in its hourly windows + its late records = its input views,
whether the log is consumed live or replayed in one bundle.
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import trigger

from tests.transforms.event_records import (
    HOUR_MS,
    MINUTE_MS,
    live_stream,
    random_log,
    reference_late,
    replay_stream,
    streaming_test_pipeline,
)
from transforms.event_time import AssignEventTime
from transforms.lateness import GateLateRecords
from transforms.windowing import CountViewsPerProperty


def _window_key(count: dict) -> tuple[tuple[str, int], int]:
    return (count["property_id"], count["window_start"]), count["view_count"]


def _property_of_window(keyed: tuple[tuple[str, int], int]) -> tuple[str, int]:
    (property_id, _), count = keyed
    return property_id, count


@pytest.mark.parametrize("consumption", ["live", "replay"])
def test_counted_plus_late_equals_input_per_property(consumption):
    log = random_log(seed=7, per_partition=80)
    expected_late = reference_late(log, HOUR_MS, 10 * MINUTE_MS)
    assert 0 < len(expected_late) < len(log)
    property_at = {(r.source.partition, r.source.offset): r.payload["property_id"] for r in log}
    inputs: dict[str, int] = {}
    for record in log:
        inputs[record.payload["property_id"]] = inputs.get(record.payload["property_id"], 0) + 1
    stream = (
        live_stream(log) if consumption == "live" else replay_stream(log, reorder_by_timestamp=True)
    )

    def late_property(late: dict) -> tuple[str, int]:
        return property_at[(late["partition"], late["offset"])], 1

    with streaming_test_pipeline() as p:
        gated = p | "Log" >> stream | GateLateRecords()
        counted = (
            gated.on_time
            | AssignEventTime()
            | CountViewsPerProperty()
            | "ByWindow" >> beam.Map(_window_key)
            # one firing at the end of the stream (the watermark reaches the end of time)
            | "Global"
            >> beam.WindowInto(
                beam.window.GlobalWindows(),
                trigger=trigger.AfterWatermark(),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
            )
            # accumulating panes: the last (largest) count of a window is its total
            | "FinalCountPerWindow" >> beam.CombinePerKey(max)
            | "ByProperty" >> beam.Map(_property_of_window)
        )
        late = gated.late | "LateProperty" >> beam.Map(late_property)
        totals = (
            (counted, late)
            | "Both" >> beam.Flatten()
            | "TotalPerProperty" >> beam.CombinePerKey(sum)
        )
        assert_that(totals, equal_to(list(inputs.items())), label="CountedPlusLate")
        assert_that(
            gated.late | "LateOffsets" >> beam.Map(lambda r: (r["partition"], r["offset"])),
            equal_to(list(expected_late)),
            label="LateAsContract",
        )
