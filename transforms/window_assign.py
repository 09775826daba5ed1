"""``KeyIntoWindows``: a per-element function and a ``WindowInto`` in one step, with the same
output as ``beam.Map(fn) | beam.WindowInto(...)``: the same values, timestamps, windows and
windowing strategy (window function, trigger, accumulation mode, timestamp combiner, allowed
lateness).

Why: Beam's own ``WindowInto`` runs on the worker as a DoFn that asks for ``TimestampParam`` and
``WindowParam``, so the SDK rebuilds its arguments for every element, and the window function
assigns with ``Timestamp`` arithmetic in Python: ~8 µs per element on this machine, against
~0.4 µs for a ``Map`` (docs/performance.md, change 10). Here one DoFn applies ``fn`` and assigns
the windows of the element's timestamp itself; for ``FixedWindows`` with integer microseconds
and the last window reused while elements stay in it.

Which window functions: those whose windows depend on the element's timestamp only —
``FixedWindows``, ``SlidingWindows``, ``Sessions`` (merged later by the grouping, as after
``WindowInto``) and ``GlobalWindows``. Any other (a custom ``WindowFn`` may look at the element or
its current window) goes through ``beam.Map(fn) | beam.WindowInto(...)`` unchanged, so the result
never differs.

``sum_in_bundle=True`` (counts in front of a ``CombinePerKey(sum)``): ``fn`` gives ``(key, n)``
and the step emits, at the end of each bundle, one ``(key, total)`` per (key, window) of the
bundle instead of one pair per element — the partial combining Beam calls combiner lifting, done
in the step because neither runner lifts these counts: Prism lifts no combine whose trigger has
an element count (``AfterCount``, handlecombine.go), and the Python SDK's own lifting (batch
only) refuses an ``AfterWatermark`` without early firings (``is_compatible_with_combiner_lifting``
reads the absent early trigger as incompatible). The sum per key and window after the grouping
is the same; what changes is what a count-based trigger counts: elements that are partial sums.
So ``AfterCount(1)`` late firings fire once per late partial sum (a LATE pane may add several
views), and an ``AfterCount(n)`` early firing with n > 1 would fire later than on the n-th view:
do not combine in the bundle under such a trigger when that timing matters. Each sum carries the
latest timestamp of its elements (the earliest for ``OUTPUT_AT_EARLIEST``), so the panes keep
the timestamps their elements would have given them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

# Window functions whose assignment depends on the element's timestamp alone (exact types:
# a subclass may assign otherwise).
_TIMESTAMP_ONLY = (window.SlidingWindows, window.Sessions, window.GlobalWindows)


def _timestamp_only(window_fn: window.WindowFn) -> bool:
    return type(window_fn) is window.FixedWindows or type(window_fn) in _TIMESTAMP_ONLY


class _KeyIntoWindowsFn(beam.DoFn):
    """``fn(element)`` in the windows ``window_fn`` assigns to the element's timestamp."""

    def __init__(self, fn: Callable[[Any], Any], window_fn: window.WindowFn) -> None:
        self._fn = fn
        self._window_fn = window_fn
        if type(window_fn) is window.FixedWindows:
            self._size: int | None = window_fn.size.micros
            self._offset = window_fn.offset.micros
        else:
            self._size = None
        self._start: int | None = None
        self._windows: tuple[window.BoundedWindow, ...] = ()

    def _fixed(self, micros: int) -> tuple[window.BoundedWindow, ...]:
        # FixedWindows.assign in integer microseconds: start = t - (t - offset) mod size.
        start = micros - (micros - self._offset) % self._size
        if start != self._start:
            self._start = start
            end = start + self._size
            self._windows = (window.IntervalWindow(Timestamp(micros=start), Timestamp(micros=end)),)
        return self._windows

    def process(self, element: Any, windowed: WindowedValue = beam.DoFn.WindowedValueParam):
        # One WindowedValueParam: no per-element argument rebuild (a WindowParam forces one).
        # An input in several windows gets this output's windows once per input window (the
        # SDK's output handler repeats them), as WindowInto's per-window calls would.
        timestamp = windowed.timestamp
        value = self._fn(element)
        yield WindowedValue(value, timestamp, self._windows_of(timestamp, value))

    def _windows_of(self, timestamp: Timestamp, value: Any) -> tuple[window.BoundedWindow, ...]:
        if self._size is not None:
            return self._fixed(timestamp.micros)
        return tuple(self._window_fn.assign(window.WindowFn.AssignContext(timestamp, value)))


class _SumIntoWindowsFn(_KeyIntoWindowsFn):
    """``fn(element)`` = ``(key, n)`` summed per (key, window) over the bundle; each sum emitted
    at the end of the bundle in its window, with the latest (``earliest=True``: the earliest)
    timestamp of its elements."""

    def __init__(
        self, fn: Callable[[Any], Any], window_fn: window.WindowFn, earliest: bool = False
    ) -> None:
        super().__init__(fn, window_fn)
        self._earliest = earliest

    def start_bundle(self) -> None:
        # {(key, window): [sum, timestamp micros]}
        self._sums: dict[tuple[Any, window.BoundedWindow], list[int]] = {}

    def process(self, element: Any, windowed: WindowedValue = beam.DoFn.WindowedValueParam):
        micros = windowed.timestamp.micros
        key, n = self._fn(element)
        # Once per input window, as the per-element step's output would be (see above).
        n *= len(windowed.windows)
        sums = self._sums
        for win in self._windows_of(windowed.timestamp, (key, n)):
            entry = sums.get((key, win))
            if entry is None:
                sums[(key, win)] = [n, micros]
            else:
                entry[0] += n
                if (micros < entry[1]) if self._earliest else (micros > entry[1]):
                    entry[1] = micros

    def finish_bundle(self):
        for (key, win), (total, micros) in self._sums.items():
            yield WindowedValue((key, total), Timestamp(micros=micros), (win,))
        self._sums = {}


class _ParDoIntoWindows(beam.ParDo):
    """A ParDo whose output has the windowing strategy ``windowing`` (what ``WindowInto``, itself
    a ParDo, declares), its DoFn assigning the windows."""

    def __init__(self, fn: beam.DoFn, windowing: Any) -> None:
        super().__init__(fn)
        self._windowing = windowing

    def get_windowing(self, unused_inputs: Any) -> Any:
        return self._windowing


class KeyIntoWindows(beam.PTransform[beam.PCollection, beam.PCollection]):
    """``fn`` applied to each element, then the element windowed as ``window_into`` windows it.

    Args:
      fn: element → output element (e.g. a ``(key, value)`` pair); picklable.
      window_into: the ``beam.WindowInto(window_fn, trigger=..., ...)`` to apply; only its
        windowing strategy is used.
      output_type: the output's element type hint (e.g. ``tuple[str, int]``), or None.
      sum_in_bundle: ``fn`` gives ``(key, n)`` pairs; emit their sums per (key, window) at the
        end of each bundle (see the module docstring for what a count-based trigger then sees).
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        window_into: beam.WindowInto,
        output_type: Any = None,
        *,
        sum_in_bundle: bool = False,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        if not callable(fn):
            raise ValueError("fn must be callable: element -> output element")
        if not isinstance(window_into, beam.WindowInto):
            raise ValueError(f"window_into must be a beam.WindowInto, got {window_into!r}")
        if sum_in_bundle and not _timestamp_only(window_into.windowing.windowfn):
            raise ValueError(
                "sum_in_bundle needs a window function whose windows depend on the timestamp "
                f"only (FixedWindows, SlidingWindows, Sessions, GlobalWindows), got "
                f"{type(window_into.windowing.windowfn).__name__}: sum after the WindowInto "
                "with a CombinePerKey instead"
            )
        self._fn = fn
        self._window_into = window_into
        self._output_type = output_type
        self._sum_in_bundle = sum_in_bundle

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        windowing = self._window_into.windowing
        window_fn = windowing.windowfn
        if self._sum_in_bundle:
            earliest = windowing.timestamp_combiner == window.TimestampCombiner.OUTPUT_AT_EARLIEST
            fn: beam.DoFn = _SumIntoWindowsFn(self._fn, window_fn, earliest)
        else:
            fn = _KeyIntoWindowsFn(self._fn, window_fn)
        if _timestamp_only(window_fn):
            step = _ParDoIntoWindows(fn, windowing)
            if self._output_type is not None:
                step = step.with_output_types(self._output_type)
            return pcoll | "KeyIntoWindows" >> step
        keyed = beam.Map(self._fn)
        if self._output_type is not None:
            keyed = keyed.with_output_types(self._output_type)
        return pcoll | "Key" >> keyed | "IntoWindows" >> self._window_into


def keyed_input(
    views: beam.PCollection | tuple[beam.PCollection, ...],
    label: str,
    key_into_windows: Callable[[], KeyIntoWindows],
) -> beam.PCollection:
    """The keyed input of a windowed count: ``views`` through ``key_into_windows()`` (step
    ``label``), or, for a tuple of parts each already keyed by it where it was produced (in
    different workers, say), the parts flattened (step ``KeyedParts``)."""
    if isinstance(views, tuple):
        return views | "KeyedParts" >> beam.Flatten()
    return views | label >> key_into_windows()
