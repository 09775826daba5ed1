"""KeyIntoWindows gives what ``beam.Map(fn) | beam.WindowInto(...)`` gives: values, timestamps,
windows and the windowing strategy, for each kind of window function."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import trigger, window
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from transforms.window_assign import KeyIntoWindows, _KeyIntoWindowsFn, _SumIntoWindowsFn

# Timestamps in seconds, negative ones and window edges among them.
SECONDS = [-3601.5, -3600, -0.000001, 0, 0.5, 599.999999, 600, 3599, 3600, 7261.25, 1.7e9 + 0.123]


def _key(x: float) -> tuple[str, float]:
    return f"k{int(x) % 3}", x


class _Described(beam.DoFn):
    """Each element as (value, timestamp micros, windows as (start, end) micros or 'global')."""

    def process(self, element, windowed=beam.DoFn.WindowedValueParam):
        windows = tuple(
            (w.start.micros, w.end.micros) if isinstance(w, window.IntervalWindow) else "global"
            for w in windowed.windows
        )
        yield element, windowed.timestamp.micros, windows


class _Shifted(window.FixedWindows):
    """A custom window function (a subclass): must take Beam's own WindowInto."""


def _window_into(window_fn: window.WindowFn) -> beam.WindowInto:
    return beam.WindowInto(
        window_fn,
        trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
        accumulation_mode=trigger.AccumulationMode.DISCARDING,
        allowed_lateness=4200,
        timestamp_combiner=window.TimestampCombiner.OUTPUT_AT_LATEST,
    )


WINDOW_FNS = {
    "fixed": window.FixedWindows(3600),
    "fixed_offset": window.FixedWindows(600, offset=7),
    "sliding": window.SlidingWindows(3600, 900),
    "sessions": window.Sessions(1800),
    "global": window.GlobalWindows(),
    "custom": _Shifted(600),
}


def _same(sides: dict[str, list]) -> bool:
    return sorted(sides.get("got", [])) == sorted(sides.get("expected", [])) != []


def _assert_same(expected: beam.PCollection, got: beam.PCollection) -> None:
    """Asserts that ``got`` holds the same (non-empty) elements as ``expected``, in any order."""
    same = (
        (
            expected | "TagExpected" >> beam.Map(lambda d: ("expected", d)),
            got | "TagGot" >> beam.Map(lambda d: ("got", d)),
        )
        | beam.Flatten()
        | "Global" >> beam.WindowInto(window.GlobalWindows())
        | beam.GroupByKey()
        | beam.combiners.ToDict()
        | beam.Map(_same)
    )
    assert_that(same, equal_to([True]))


@pytest.mark.parametrize("name", list(WINDOW_FNS))
def test_same_elements_windows_and_strategy_as_map_then_window_into(name):
    window_fn = WINDOW_FNS[name]
    with TestPipeline() as p:
        stamped = p | beam.Create(SECONDS) | "Stamp" >> beam.Map(lambda s: TimestampedValue(s, s))
        expected = (
            stamped
            | "Key" >> beam.Map(_key)
            | "WindowInto" >> _window_into(window_fn)
            | "DescribeExpected" >> beam.ParDo(_Described())
        )
        windowed = stamped | KeyIntoWindows(_key, _window_into(window_fn))
        got = windowed | "DescribeGot" >> beam.ParDo(_Described())
        strategy, wanted = windowed.windowing, _window_into(window_fn).windowing
        assert strategy.windowfn is window_fn  # (a FixedWindows subclass is equal to nothing)
        assert (
            strategy.triggerfn,
            strategy.accumulation_mode,
            strategy.timestamp_combiner,
            strategy.allowed_lateness,
        ) == (
            wanted.triggerfn,
            wanted.accumulation_mode,
            wanted.timestamp_combiner,
            wanted.allowed_lateness,
        )
        _assert_same(expected, got)


def test_fixed_windows_in_integer_micros_equal_beams_assignment():
    fn = _KeyIntoWindowsFn(_key, window.FixedWindows(600, offset=7))
    for micros in (-3_600_000_001, -1, 0, 6_999_999, 7_000_000, 1_700_000_000_123_456):
        ts = beam.utils.timestamp.Timestamp(micros=micros)
        expected = window.FixedWindows(600, offset=7).assign(window.WindowFn.AssignContext(ts))
        assert list(fn._fixed(micros)) == expected


def _key_one(x: float) -> tuple[str, int]:
    return f"k{int(x) % 3}", 1


@pytest.mark.parametrize("name", [n for n in WINDOW_FNS if n != "custom"])
def test_summed_in_the_bundle_then_combined_equals_combined_per_element(name):
    window_fn = WINDOW_FNS[name]
    with TestPipeline() as p:
        stamped = p | beam.Create(SECONDS) | "Stamp" >> beam.Map(lambda s: TimestampedValue(s, s))
        expected = (
            stamped
            | "PerElement" >> KeyIntoWindows(_key_one, _window_into(window_fn))
            | "SumExpected" >> beam.CombinePerKey(sum)
            | "DescribeExpected" >> beam.ParDo(_Described())
        )
        got = (
            stamped
            | "InBundle" >> KeyIntoWindows(_key_one, _window_into(window_fn), sum_in_bundle=True)
            | "SumGot" >> beam.CombinePerKey(sum)
            | "DescribeGot" >> beam.ParDo(_Described())
        )
        _assert_same(expected, got)


def _bundle(fn: _KeyIntoWindowsFn, stamped: list[tuple[float, float]]) -> list:
    """Runs one bundle of (value, timestamp s) through ``fn``; (value, ts micros, windows)."""
    fn.start_bundle()
    out = []
    for value, seconds in stamped:
        wv = WindowedValue(value, Timestamp.of(seconds), (window.GlobalWindow(),))
        out.extend(fn.process(value, wv) or [])
    out.extend(fn.finish_bundle() or [])
    return sorted(
        (o.value, o.timestamp.micros, tuple((w.start.micros, w.end.micros) for w in o.windows))
        for o in out
    )


def test_sum_in_bundle_emits_one_sum_per_key_and_window_with_the_latest_timestamp():
    values = [("a", 1), ("a", 2), ("b", 5), ("a", 4)]
    stamped = [(values[0], 10), (values[1], 30), (values[2], 20), (values[3], 700)]
    fn = _SumIntoWindowsFn(lambda v: v, window.FixedWindows(600))
    w0, w1 = (0, 600_000_000), (600_000_000, 1_200_000_000)
    assert _bundle(fn, stamped) == [
        (("a", 3), 30_000_000, (w0,)),  # 1 + 2, at the later of 10 s and 30 s
        (("a", 4), 700_000_000, (w1,)),
        (("b", 5), 20_000_000, (w0,)),
    ]
    # The next bundle starts from nothing.
    assert _bundle(fn, [(("a", 1), 5)]) == [(("a", 1), 5_000_000, (w0,))]
    earliest = _SumIntoWindowsFn(lambda v: v, window.FixedWindows(600), earliest=True)
    assert _bundle(earliest, stamped)[0] == (("a", 3), 10_000_000, (w0,))
    # Sliding windows: a sum per window that covers the element.
    sliding = _SumIntoWindowsFn(lambda v: v, window.SlidingWindows(600, 300))
    assert [(v, w) for v, _, w in _bundle(sliding, stamped[:2])] == [
        (("a", 3), ((-300_000_000, 300_000_000),)),
        (("a", 3), (w0,)),
    ]


def test_sum_in_bundle_takes_the_earliest_timestamp_under_output_at_earliest():
    into = beam.WindowInto(
        window.FixedWindows(600), timestamp_combiner=window.TimestampCombiner.OUTPUT_AT_EARLIEST
    )
    with TestPipeline() as p:
        stamped = (
            p
            | beam.Create([(("a", 1), 30), (("a", 1), 10)])
            | beam.MapTuple(lambda v, s: TimestampedValue(v, s))
        )
        got = (
            stamped
            | KeyIntoWindows(lambda v: v, into, sum_in_bundle=True)
            | beam.ParDo(_Described())
        )
        # One bundle (a two-element Create): one sum, at the earlier timestamp.
        assert_that(got, equal_to([(("a", 2), 10_000_000, ((0, 600_000_000),))]))


def test_sum_in_bundle_refuses_a_window_function_it_cannot_assign_itself():
    with pytest.raises(ValueError, match=r"sum_in_bundle needs a window function.*_Shifted"):
        KeyIntoWindows(_key_one, _window_into(WINDOW_FNS["custom"]), sum_in_bundle=True)
