"""The late gate: "late in the log" per partition, identical live, replayed, or reordered."""

from __future__ import annotations

import gc

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from tests.transforms.beam_results import counter_totals
from tests.transforms.event_records import (
    HOUR_MS,
    MINUTE_MS,
    at,
    live_stream,
    random_log,
    reference_late,
    replay_stream,
    stamped,
    streaming_test_pipeline,
    view,
)
from transforms.lateness import (
    LATE_COUNTER,
    ON_TIME_COUNTER,
    GateLateRecords,
    _as_wire,
    from_wire,
    late_by_ms,
    release_in_offset_order,
    to_wire,
    tumbling_window_end_ms,
)
from transforms.metrics import NAMESPACE
from transforms.types import Decoded


def offsets(decoded: Decoded) -> tuple[int, int]:
    return (decoded.source.partition, decoded.source.offset)


def late_offsets(late: dict) -> tuple[int, int]:
    return (late["partition"], late["offset"])


# One partition's log, in offset order, narrated. Window 00:00-01:00, lateness 10 min.
NARRATED_LOG = [
    view(at(5), offset=0),  # on time: first record
    view(at(50), offset=1),  # on time
    view(at(65), offset=2),  # on time: stream time moves into the next hour
    view(at(10), offset=3),  # late but allowed: stream time 01:05 < 01:00 + 10 min
    view(at(71), offset=4),  # on time: stream time 01:11 now
    view(at(20), offset=5),  # too late: 01:11 >= 01:10, late by 1 min
    view(at(70), offset=6),  # on time: its own window ends at 02:00
]
NARRATED_LATE = {(0, 5): 1 * MINUTE_MS}


def test_window_end_is_the_end_of_the_epoch_aligned_hour():
    assert tumbling_window_end_ms(at(0), HOUR_MS) == at(60)
    assert tumbling_window_end_ms(at(59.999), HOUR_MS) == at(60)
    assert tumbling_window_end_ms(at(60), HOUR_MS) == at(120)


def test_a_record_is_late_exactly_when_stream_time_reaches_window_end_plus_lateness():
    lateness = 10 * MINUTE_MS
    assert late_by_ms(None, at(0), HOUR_MS, lateness) is None
    assert late_by_ms(at(69.999), at(0), HOUR_MS, lateness) is None
    assert late_by_ms(at(70), at(0), HOUR_MS, lateness) == 0
    assert late_by_ms(at(75), at(30), HOUR_MS, lateness) == 5 * MINUTE_MS


def test_gate_rejects_a_non_positive_window_and_negative_lateness():
    with pytest.raises(ValueError, match="window_size_s"):
        GateLateRecords(window_size_s=0)
    with pytest.raises(ValueError, match="allowed_lateness_s"):
        GateLateRecords(allowed_lateness_s=-1)


def test_narrated_log_sends_only_the_too_late_record_to_the_late_output():
    with TestPipeline() as p:
        gated = p | "Log" >> beam.Create([stamped(r) for r in NARRATED_LOG]) | GateLateRecords()
        assert_that(
            gated.on_time | "OnTimeOffsets" >> beam.Map(offsets),
            equal_to([(0, o) for o in (0, 1, 2, 3, 4, 6)]),
            label="OnTime",
        )
        assert_that(
            gated.late | "LateBy" >> beam.Map(lambda r: (late_offsets(r), r["late_by_ms"])),
            equal_to(list(NARRATED_LATE.items())),
            label="Late",
        )


def test_late_record_points_back_at_the_original_bytes_and_window():
    record = NARRATED_LOG[5]
    with TestPipeline() as p:
        gated = p | "Log" >> beam.Create([stamped(r) for r in NARRATED_LOG]) | GateLateRecords()
        assert_that(
            gated.late,
            equal_to(
                [
                    {
                        "topic": "property-views",
                        "partition": 0,
                        "offset": 5,
                        "key": record.source.key,
                        "value": record.source.value,
                        "record_timestamp": at(20),
                        "event_time": at(20),
                        "window_end": at(60),
                        "late_by_ms": MINUTE_MS,
                        "stage": "late_gate",
                    }
                ]
            ),
            label="LateRecord",
        )


def two_partition_log() -> list[Decoded]:
    """Partition 1 races 5 hours ahead; partition 0 carries the narrated log."""
    racing = [view(at(300 + i), partition=1, offset=i) for i in range(3)]
    interleaved = []
    for i in range(max(len(NARRATED_LOG), len(racing))):
        if i < len(racing):
            interleaved.append(racing[i])
        if i < len(NARRATED_LOG):
            interleaved.append(NARRATED_LOG[i])
    return interleaved


@pytest.mark.parametrize(
    "consumption",
    ["live", "replay", "replay_reordered_by_timestamp"],
)
def test_same_records_are_late_live_replayed_and_reordered_and_a_racing_partition_changes_nothing(
    consumption,
):
    log = two_partition_log()
    stream = {
        "live": lambda: live_stream(log),
        "replay": lambda: replay_stream(log, reorder_by_timestamp=False),
        "replay_reordered_by_timestamp": lambda: replay_stream(log, reorder_by_timestamp=True),
    }[consumption]()
    expected_late = reference_late(log, HOUR_MS, 10 * MINUTE_MS)
    # Partition 1 being 5 h ahead must not make partition 0's records late.
    assert expected_late == NARRATED_LATE
    with streaming_test_pipeline() as p:
        gated = p | "Log" >> stream | GateLateRecords()
        assert_that(
            gated.on_time | "OnTimeOffsets" >> beam.Map(offsets),
            equal_to([offsets(r) for r in log if offsets(r) not in expected_late]),
            label="OnTime",
        )
        assert_that(
            gated.late | "LateBy" >> beam.Map(lambda r: (late_offsets(r), r["late_by_ms"])),
            equal_to(list(expected_late.items())),
            label="Late",
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_on_time_plus_late_equals_input_per_partition_and_matches_the_contract_rule(seed):
    log = random_log(seed)
    expected_late = reference_late(log, HOUR_MS, 10 * MINUTE_MS)
    assert 0 < len(expected_late) < len(log)  # the data exercises both outputs
    per_partition = {}
    for record in log:
        per_partition[record.source.partition] = per_partition.get(record.source.partition, 0) + 1

    p = TestPipeline()
    gated = p | "Log" >> beam.Create([stamped(r) for r in log]) | GateLateRecords()
    on_time_partitions = gated.on_time | "OnTimePartition" >> beam.Map(lambda d: d.source.partition)
    late_partitions = gated.late | "LatePartition" >> beam.Map(lambda r: r["partition"])
    counted_plus_late = (
        (on_time_partitions, late_partitions)
        | "Both" >> beam.Flatten()
        | "CountPerPartition" >> beam.combiners.Count.PerElement()
    )
    assert_that(counted_plus_late, equal_to(list(per_partition.items())), label="Identity")
    assert_that(
        gated.late | "LateOffsets" >> beam.Map(lambda r: (late_offsets(r), r["late_by_ms"])),
        equal_to(list(expected_late.items())),
        label="LateAsContract",
    )
    result = p.run()
    result.wait_until_finish()
    counters = counter_totals(result, NAMESPACE)
    assert counters[LATE_COUNTER] == len(expected_late)
    assert counters[ON_TIME_COUNTER] + counters[LATE_COUNTER] == len(log)


def _identity(offset: int) -> int:
    return offset


def test_release_waits_for_a_missing_offset_and_lets_redelivered_offsets_through():
    first = release_in_offset_order([0, 1, 3, 4], None, 10, _identity)
    assert (first.released, first.held, first.next_offset) == ([0, 1], [3, 4], 2)
    second = release_in_offset_order([*first.held, 2, 1], first.next_offset, 10, _identity)
    assert (second.released, second.held, second.next_offset) == ([1, 2, 3, 4], [], 5)
    assert second.behind == 1  # offset 1 again: released at once, not waited for


def test_release_gives_up_on_a_gap_once_more_than_max_held_wait():
    release = release_in_offset_order([5, 7, 8, 9], 5, 2, _identity)
    assert (release.released, release.held, release.next_offset) == ([5, 7, 8, 9], [], 10)
    assert release.gap_skipped


def test_batches_arriving_out_of_offset_order_are_decided_in_offset_order():
    # Parallel bundles upstream (Prism runs them) can deliver offsets 3-6 before 1-2.
    log = NARRATED_LOG
    stream = (
        TestStream()
        .add_elements([stamped(log[0])])
        .add_elements([stamped(r) for r in log[3:]])
        .add_elements([stamped(r) for r in log[1:3]])
        .advance_watermark_to_infinity()
    )
    with streaming_test_pipeline() as p:
        gated = p | "Log" >> stream | GateLateRecords()
        assert_that(
            gated.late | "LateBy" >> beam.Map(lambda r: (late_offsets(r), r["late_by_ms"])),
            equal_to(list(NARRATED_LATE.items())),
            label="Late",
        )
        assert_that(
            gated.on_time | "OnTimeOffsets" >> beam.Map(offsets),
            equal_to([(0, o) for o in (0, 1, 2, 3, 4, 6)]),
            label="OnTime",
        )


def test_records_behind_a_gap_are_flushed_when_the_input_ends():
    log = [r for r in NARRATED_LOG if r.source.offset != 2]  # offset 2 never comes
    with TestPipeline() as p:
        gated = p | "Log" >> beam.Create([stamped(r) for r in log]) | GateLateRecords()
        both = (
            gated.on_time | "OnTimeOffsets" >> beam.Map(offsets),
            gated.late | "LateOffsets" >> beam.Map(late_offsets),
        ) | "Both" >> beam.Flatten()
        assert_that(both, equal_to([offsets(r) for r in log]), label="NothingLost")


def test_batches_cross_the_shuffle_as_plain_values_not_pickled_named_tuples():
    decoded = view(at(5), offset=7)
    wire = to_wire(decoded, 123)
    assert from_wire(wire) == (decoded, 123)
    coder = beam.coders.FastPrimitivesCoder()
    # A NamedTuple falls back to pickle, which names its class in every element; the wire form
    # is tuples, dicts, str, bytes and ints that the coder encodes natively.
    assert b"Decoded" in coder.encode((decoded, 123))
    assert b"Decoded" not in coder.encode(wire) and b"KafkaRecord" not in coder.encode(wire)
    assert coder.decode(coder.encode(wire)) == wire


def test_the_gate_buffers_records_as_values_the_garbage_collector_mostly_stops_tracking():
    # A bounded read gives a bundle a whole partition, and the collector rescans every tracked
    # object it holds at each full collection: a Decoded record is three tracked objects (the
    # pair with its timestamp, the Decoded, its KafkaRecord), its wire form one (the outer
    # tuple: a tuple holding a dict stays tracked; the payload and the source do not).
    decoded = view(at(5), offset=7)
    pair, item = (decoded, 123), to_wire(decoded, 123)
    gc.collect()
    assert [gc.is_tracked(o) for o in (pair, pair[0], pair[0].source)] == [True, True, True]
    assert [gc.is_tracked(o) for o in (item, item[0], item[2])] == [True, False, False]


def test_records_held_by_an_earlier_gate_as_decoded_pairs_are_still_decided():
    decoded = view(at(5), offset=7)
    assert _as_wire((decoded, 123)) == to_wire(decoded, 123)
    assert _as_wire(to_wire(decoded, 123)) == to_wire(decoded, 123)


def _offset_and_timestamp_ms(element, timestamp=beam.DoFn.TimestampParam):
    offset = element.source.offset if isinstance(element, Decoded) else element["offset"]
    return offset, timestamp.micros // 1000


@pytest.mark.parametrize("stamp_event_time", [False, True])
def test_the_gate_stamps_passed_records_with_their_event_time_only_when_asked(stamp_event_time):
    # Record timestamps 3 minutes after each event time, as a producer's CreateTime may be.
    log = [
        r._replace(source=r.source._replace(timestamp_ms=r.payload["event_time"] + 3 * MINUTE_MS))
        for r in NARRATED_LOG
    ]
    with TestPipeline() as p:
        gated = (
            p
            | "Log" >> beam.Create([stamped(r) for r in log])
            | GateLateRecords(stamp_event_time=stamp_event_time)
        )
        on_time = [r for r in log if (0, r.source.offset) not in NARRATED_LATE]
        field = "event_time" if stamp_event_time else None
        assert_that(
            gated.on_time | "OnTimeStamps" >> beam.Map(_offset_and_timestamp_ms),
            equal_to(
                [
                    (r.source.offset, r.payload[field] if field else r.source.timestamp_ms)
                    for r in on_time
                ]
            ),
            label="OnTime",
        )
        # A late record keeps its record timestamp either way.
        assert_that(
            gated.late | "LateStamps" >> beam.Map(_offset_and_timestamp_ms),
            equal_to([(5, at(20) + 3 * MINUTE_MS)]),
            label="Late",
        )
