"""KeyIntoWindows gives what ``beam.Map(fn) | beam.WindowInto(...)`` gives: values, timestamps,
windows and the windowing strategy, for each kind of window function."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import trigger, window
from apache_beam.transforms.window import TimestampedValue

from transforms.window_assign import KeyIntoWindows, _KeyIntoWindowsFn

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


def test_fixed_windows_in_integer_micros_equal_beams_assignment():
    fn = _KeyIntoWindowsFn(_key, window.FixedWindows(600, offset=7))
    for micros in (-3_600_000_001, -1, 0, 6_999_999, 7_000_000, 1_700_000_000_123_456):
        ts = beam.utils.timestamp.Timestamp(micros=micros)
        expected = window.FixedWindows(600, offset=7).assign(window.WindowFn.AssignContext(ts))
        assert list(fn._fixed(micros)) == expected
