"""Hourly, hopping and session view counts: panes, lateness, overlap and merging."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import GlobalWindow

from tests.transforms.event_records import at, streaming_test_pipeline, ts, view
from transforms.event_time import AssignEventTime
from transforms.windowing import (
    AccumulatePanes,
    CountViewsPerProperty,
    CountViewsPerPropertyHopping,
    SessionizeViews,
    _AccumulateGroupedPanesFn,
    view_count,
)


def elements(*views):
    return [beam.window.TimestampedValue(v, ts(v.payload["event_time"])) for v in views]


def test_hourly_counts_fire_on_time_then_a_late_pane_accumulates_and_too_late_is_dropped():
    stream = (
        TestStream()
        # on time: three views of p1 and one of p2 in hour 0, one of p1 in hour 1
        .add_elements(
            elements(view(at(1)), view(at(20)), view(at(59)), view(at(30), property_id="p2"))
        )
        .add_elements(elements(view(at(61))))
        .advance_watermark_to(ts(at(60)))  # hour 0 fires ON_TIME
        # late but allowed (watermark past 01:00, within 70 min): a LATE pane, accumulated
        .add_elements(elements(view(at(45))))
        .advance_watermark_to(ts(at(121)))  # hour 1 fires ON_TIME
        .advance_watermark_to(ts(at(131)))  # hour 0 expires: 01:00 + 70 min
        # too late for Beam (the gate in front never lets this through): dropped
        .add_elements(elements(view(at(50))))
        .advance_watermark_to_infinity()
    )
    with streaming_test_pipeline() as p:
        counts = p | "Views" >> stream | CountViewsPerProperty()
        # The window is in each record (the output is in the global window).
        assert_that(
            counts,
            equal_to(
                [
                    view_count("p1", at(0), at(60), 3, "ON_TIME"),
                    view_count("p2", at(0), at(60), 1, "ON_TIME"),
                    view_count("p1", at(0), at(60), 4, "LATE"),
                    view_count("p1", at(60), at(120), 1, "ON_TIME"),
                ]
            ),
            label="Panes",
        )


def test_early_firing_emits_an_early_pane_before_the_window_closes():
    stream = (
        TestStream()
        .advance_watermark_to(ts(at(0)))
        .add_elements(elements(view(at(5)), view(at(6))))
        .advance_processing_time(61)  # one early-firing period of processing time
        .add_elements(elements(view(at(7))))
        .advance_watermark_to(ts(at(60)))
        .advance_watermark_to_infinity()
    )
    with streaming_test_pipeline() as p:
        counts = p | "Views" >> stream | CountViewsPerProperty(early_firing_s=60)
        assert_that(
            counts,
            equal_to(
                [
                    view_count("p1", at(0), at(60), 2, "EARLY"),
                    view_count("p1", at(0), at(60), 3, "ON_TIME"),
                ]
            ),
            label="Panes",
        )


def test_hopping_windows_count_a_view_in_every_window_that_covers_it():
    with TestPipeline() as p:
        counts = (
            p
            | "Views" >> beam.Create([view(at(40)), view(at(10))])
            | AssignEventTime()
            | CountViewsPerPropertyHopping(size_s=3600, period_s=1800)
        )
        assert_that(
            counts,
            equal_to(
                [
                    view_count("p1", at(-30), at(30), 1, "ON_TIME"),  # 00:10
                    view_count("p1", at(0), at(60), 2, "ON_TIME"),  # both overlap here
                    view_count("p1", at(30), at(90), 1, "ON_TIME"),  # 00:40
                ]
            ),
            label="Overlap",
        )


def test_a_view_that_fills_the_gap_merges_two_sessions():
    stream = (
        TestStream()
        # two sessions of p1 (gap 10 min): [00:00, 00:22) and [00:40, 00:50)
        .add_elements(elements(view(at(0)), view(at(5)), view(at(12)), view(at(40))))
        # a view at 00:33 arrives before the watermark: its session [00:33, 00:43) overlaps the
        # second one, which grows to [00:33, 00:50)
        .add_elements(elements(view(at(33))))
        .advance_watermark_to_infinity()
    )
    with streaming_test_pipeline() as p:
        counts = p | "Views" >> stream | SessionizeViews(gap_s=600)
        assert_that(
            counts,
            equal_to(
                [
                    view_count("p1", at(0), at(22), 3, "ON_TIME"),
                    view_count("p1", at(33), at(50), 2, "ON_TIME"),
                ]
            ),
            label="Sessions",
        )


def test_discarding_panes_come_out_accumulated_and_a_pane_adding_nothing_is_not_emitted():
    """Each pane in counts the views since its window's last pane: out comes the window's count
    so far, once per change (an empty pane, as a runner may fire at a window's expiry, adds
    nothing and is not written); a merged session takes over the counts of its parts."""
    h0, h1 = (at(0), at(60)), (at(60), at(120))
    fired = [
        view_count("p1", *h0, 3, "ON_TIME"),
        view_count("p2", *h0, 3, "ON_TIME"),  # other property: its own count
        view_count("p1", *h1, 3, "ON_TIME"),  # other window: its own count
        view_count("p1", *h0, 1, "LATE"),  # a late view: 3 + 1
        view_count("p1", *h0, 0, "LATE"),  # adds nothing: dropped
        view_count("p3", at(0), at(22), 3, "ON_TIME"),  # two sessions...
        view_count("p3", at(33), at(50), 2, "ON_TIME"),
        view_count("p3", at(0), at(50), 1, "LATE"),  # ...merged by a view filling the gap
    ]
    expected = [
        fired[0],
        fired[1],
        fired[2],
        view_count("p1", *h0, 4, "LATE"),
        fired[5],
        fired[6],
        view_count("p3", at(0), at(50), 6, "LATE"),
    ]
    stream = TestStream()
    for pane in fired:  # one at a time, in this order (a stateful DoFn sees them so)
        stream = stream.add_elements([beam.window.TimestampedValue(pane, ts(pane["window_end"]))])
    with streaming_test_pipeline() as p:
        kept = p | "Panes" >> stream.advance_watermark_to_infinity() | AccumulatePanes(600)
        assert_that(kept, equal_to(expected), label="Kept")

        def in_global_window(windows: list) -> None:
            assert set(windows) == {GlobalWindow()}

        windows = kept | "Windows" >> beam.ParDo(_WindowOf())
        assert_that(windows, in_global_window, label="GlobalWindow")


def test_bounded_accumulation_groups_the_panes_and_ends_each_window_on_its_total():
    """A bounded input's panes grouped per property, in whatever order the grouping gives
    (here reversed, a merged session before its parts): each window's last output carries the
    same total as the stateful accumulation's, a pane adding nothing is not written."""
    h0, h1 = (at(0), at(60)), (at(60), at(120))
    fired = [
        view_count("p1", *h0, 3, "ON_TIME"),
        view_count("p1", *h1, 3, "ON_TIME"),
        view_count("p1", *h0, 1, "LATE"),
        view_count("p1", *h0, 0, "LATE"),
        view_count("p3", at(0), at(22), 3, "ON_TIME"),
        view_count("p3", at(33), at(50), 2, "ON_TIME"),
        view_count("p3", at(0), at(50), 1, "LATE"),
    ]
    finals = {("p1", *h0): 4, ("p1", *h1): 3, ("p3", at(0), at(50)): 6}

    def last_per_window(outputs: list) -> dict:
        last = {}
        for out in outputs:
            last[(out["property_id"], out["window_start"], out["window_end"])] = out["view_count"]
        return last

    emitted = {
        property_id: list(
            _AccumulateGroupedPanesFn().process(
                (property_id, [p for p in reversed(fired) if p["property_id"] == property_id])
            )
        )
        for property_id in ("p1", "p3")
    }
    assert last_per_window(emitted["p1"] + emitted["p3"]) == {
        **finals,
        # the sessions a merged one absorbed were written before it, with their own counts
        ("p3", at(0), at(22)): 3,
        ("p3", at(33), at(50)): 2,
    }
    assert len(emitted["p1"]) == 3  # the empty pane is not written

    with TestPipeline() as p:
        kept = p | beam.Create(list(reversed(fired))) | AccumulatePanes(600, bounded=True)
        totals = kept | beam.Map(
            lambda o: ((o["property_id"], o["window_start"], o["window_end"]), o["view_count"])
        )
        largest = totals | beam.CombinePerKey(max)
        assert_that(
            largest,
            equal_to([*finals.items(), (("p3", at(0), at(22)), 3), (("p3", at(33), at(50)), 2)]),
        )


class _WindowOf(beam.DoFn):
    def process(self, _element, win=beam.DoFn.WindowParam):
        yield win


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CountViewsPerProperty(window_size_s=0), "window_size_s"),
        (lambda: CountViewsPerProperty(allowed_lateness_s=-1), "allowed_lateness_s"),
        (lambda: CountViewsPerProperty(early_firing_s=0), "early_firing_s"),
        (lambda: CountViewsPerPropertyHopping(size_s=600, period_s=900), "period_s"),
        (lambda: SessionizeViews(gap_s=0), "gap_s"),
    ],
)
def test_invalid_window_parameters_are_rejected_with_the_parameter_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
