"""Views per property in event-time windows: hourly tumbling, hopping, and sessions.

Input: ``Decoded`` PropertyView records whose timestamps are their payload ``event_time``
(``transforms/event_time.AssignEventTime``), normally the ``on_time`` output of
``transforms/lateness.GateLateRecords``. Output: PropertyViewCount dicts (``property_id``,
``window_start``, ``window_end`` as epoch ms, ``view_count``, ``pane``), one per pane fired that
changes its window's count, in the global window (see the last point below).

Semantics shared by the three variants:

- Trigger ``AfterWatermark(early=AfterProcessingTime(early_firing_s) if set, late=AfterCount(1))``:
  an ON_TIME pane when the watermark passes the window end, optional EARLY panes every
  ``early_firing_s`` of processing time before that, and a LATE pane for every late arrival.
- Views are summed per (property, window) within each bundle before the grouping
  (``KeyIntoWindows(sum_in_bundle=True)``): the grouping then sees one partial count per property
  and window of a bundle, not one element per view (neither Prism nor the Python SDK lifts this
  combine, see ``transforms/window_assign.py``). Counts are the same; a late arrival is a partial
  count, so one LATE pane may add the several late views of one bundle.
- ACCUMULATING panes: every pane carries the window's full count so far, so a consumer keeps the
  last pane per (property_id, window) — the Kafka topic is keyed by property_id.
- Allowed lateness defaults to 70 min = the gate's 1 h window + its 10 min lateness: Beam must
  not drop what the gate passed. The gate judges lateness by the record's own partition; Beam by
  the watermark, which (CreateTime) trails the slowest partition, so for a record the gate passed
  it is normally well inside 70 min. Not guaranteed: when one read bundle spans more event time
  than that margin, the watermark can move past before the record is aggregated. Seen so far:
  the DirectRunner aggregates a bundle before moving the watermark (nothing dropped, tested live
  and replayed in ``tests/transforms/test_time_composition.py``); Prism, given a record beyond the
  lateness, does not drop it but starts the expired window over: a LATE pane counting from 1
  (verified with TestStream). Raise ``allowed_lateness_s`` for large replays.
- One record per change of a window's count, and every pane out as soon as it fires, on every
  runner. The grouping itself is DISCARDING (each pane counts the views since the window's last
  pane); ``AccumulatePanes``, a stateful DoFn per property, adds the pane to the window's count
  so far and emits the sum, and emits nothing for a pane that adds no view. Why not Beam's
  ACCUMULATING mode followed by a filter of repeated counts: on Prism 2.73
  an accumulating grouping keeps every fired element pending until its window expires (end +
  allowed lateness) to re-fire it, and those pending elements hold the grouping's output
  watermark at the oldest unexpired window; Prism runs a stateful stage only when its input
  watermark moves (``bundleReady``, engine/elementmanager.go), so on a quiet stream the panes
  of the last windows waited in the filter until the next window expired, up to 70 min after
  they fired (reproduced by ``tests/integration/test_quiet_stream.py``). Discarding keeps
  nothing pending, so the watermark behind the grouping follows its input (on an idle stream,
  Kafka's CreateTime policy moves it to the wall clock), and it also removes at the source the
  extra pane Prism fired at a window's expiry repeating the last count. Flink and the
  DirectRunner emit the same panes either way. ``AccumulatePanes`` keeps, per property, each
  window's count until the window's end + 2 x allowed lateness (past the last pane Beam can
  fire), then forgets it. Its output is in the global window (the window bounds are in each
  record), like the fraud alerts: re-window by ``window_start``/``window_end`` to aggregate
  further. Merging windows (sessions): a pane of a merged session takes over the counts of the
  sessions it absorbed.
- ``pane`` is EARLY/ON_TIME/LATE from Beam's PaneInfo; a runner that reports UNKNOWN timing (a
  batch run fires each window once, at the end) is reported as ON_TIME.

Compared with the Kafka Streams seed (``windowedBy(TimeWindows.of(1 h)).count()``, no
``suppress``): the seed emits an updated count on every record (a KTable changelog) and keeps a
window open for its grace period (24 h minus the window size by default for the deprecated
``TimeWindows.of``); here Beam's allowed lateness (70 min) plays the grace period's role, and the
trigger replaces both the per-record updates and ``suppress``: one ON_TIME pane when the watermark
passes the window end, optional EARLY panes, one LATE pane per late arrival (a bundle's late views
of the property), each accumulating (superseding the previous one). Records later than the gate's
lateness never reach the window: they are on the late topic instead of being silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.coders import FastPrimitivesCoder
from apache_beam.transforms import trigger, userstate, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming

from schemas.contract import BEAM_ALLOWED_LATENESS_S
from transforms import metrics
from transforms.event_time import to_epoch_ms, to_timestamp
from transforms.types import Decoded
from transforms.window_assign import KeyIntoWindows, keyed_input

# Counters (transforms/metrics.py's namespace), all variants together: panes fired by the
# windows, and fired panes not emitted because they added no view to their window.
WINDOWS_FIRED_COUNTER = "windows_fired"
PANES_SUPPRESSED_COUNTER = "panes_suppressed"

# Behind the late gate: its 1 h window + 10 min lateness (schemas/contract.py).
DEFAULT_ALLOWED_LATENESS_S = BEAM_ALLOWED_LATENESS_S

_PANE_NAMES = {
    PaneInfoTiming.EARLY: "EARLY",
    PaneInfoTiming.ON_TIME: "ON_TIME",
    PaneInfoTiming.LATE: "LATE",
    PaneInfoTiming.UNKNOWN: "ON_TIME",
}


def pane_name(timing: int) -> str:
    """EARLY | ON_TIME | LATE for a PaneInfo timing (UNKNOWN, from batch runs, is ON_TIME)."""
    return _PANE_NAMES[timing]


def view_count(
    property_id: str, window_start: int, window_end: int, count: int, pane: str
) -> dict[str, Any]:
    """A PropertyViewCount dict (schemas/property_view_count.avsc)."""
    return {
        "property_id": property_id,
        "window_start": window_start,
        "window_end": window_end,
        "view_count": count,
        "pane": pane,
    }


def _property_of(decoded: Decoded) -> tuple[str, int]:
    return decoded.payload["property_id"], 1


class _FormatPanes(beam.DoFn):
    """Formats each pane as a PropertyViewCount."""

    def __init__(self) -> None:
        self._fired = metrics.counter(WINDOWS_FIRED_COUNTER)

    def process(
        self,
        keyed_count: tuple[str, int],
        win: window.BoundedWindow = beam.DoFn.WindowParam,
        pane: Any = beam.DoFn.PaneInfoParam,
    ):
        self._fired.inc()
        property_id, count = keyed_count
        yield view_count(
            property_id,
            to_epoch_ms(win.start),
            to_epoch_ms(win.end),
            count,
            pane_name(pane.timing),
        )


def _keyed_by_property(pane: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return pane["property_id"], pane


def _windows_within(counts: dict[tuple[int, int], Any], start: int, end: int) -> list:
    """The remembered windows ``(start, end)`` covers: itself, and for a merged session the
    sessions it absorbed."""
    return [key for key in counts if start <= key[0] and key[1] <= end]


class _AccumulatePanesFn(beam.DoFn):
    """Per property (global window): adds each pane's new views to its window's count so far and
    emits the sum, or nothing when the pane adds none; forgets a window ``forget_after_ms`` after
    its end. A pane whose window contains remembered windows (merged sessions) takes over their
    counts."""

    # {(window_start, window_end): (count so far, forget at epoch ms)}
    COUNTS = userstate.ReadModifyWriteStateSpec("window_counts", FastPrimitivesCoder())
    FORGET = userstate.TimerSpec("forget", TimeDomain.WATERMARK)

    def __init__(self, forget_after_ms: int) -> None:
        self._forget_after_ms = forget_after_ms
        self._suppressed = metrics.counter(PANES_SUPPRESSED_COUNTER)

    def process(
        self,
        keyed: tuple[str, dict[str, Any]],
        counts_state=beam.DoFn.StateParam(COUNTS),  # noqa: B008 (Beam idiom)
        forget=beam.DoFn.TimerParam(FORGET),  # noqa: B008
    ):
        _, pane = keyed
        if pane["view_count"] <= 0:
            self._suppressed.inc()
            return
        counts: dict[tuple[int, int], tuple[int, int]] = counts_state.read() or {}
        start, end = pane["window_start"], pane["window_end"]
        merged = _windows_within(counts, start, end)
        total = pane["view_count"] + sum(counts.pop(key)[0] for key in merged)
        counts[(start, end)] = (total, end - 1 + self._forget_after_ms)
        counts_state.write(counts)
        forget.set(to_timestamp(min(at for _, at in counts.values())))
        yield {**pane, "view_count": total}

    @userstate.on_timer(FORGET)
    def forget_expired(
        self,
        fired_at: Timestamp = beam.DoFn.TimestampParam,
        counts_state=beam.DoFn.StateParam(COUNTS),  # noqa: B008
        forget=beam.DoFn.TimerParam(FORGET),  # noqa: B008
    ):
        now_ms = to_epoch_ms(fired_at)
        kept = {k: v for k, v in (counts_state.read() or {}).items() if v[1] > now_ms}
        if kept:
            counts_state.write(kept)
            forget.set(to_timestamp(min(at for _, at in kept.values())))
        else:
            counts_state.clear()


def _window_size_then_start(pane: dict[str, Any]) -> tuple[int, int]:
    return pane["window_end"] - pane["window_start"], pane["window_start"]


class _AccumulateGroupedPanesFn(beam.DoFn):
    """A property's panes, all of them at once (a bounded input, grouped): the same sums as
    ``_AccumulatePanesFn`` without state. The panes are taken smallest window first, so a merged
    session comes after the sessions it absorbed whatever order the grouping gave; the panes of
    one window add up in any order, and the last one emitted for a window carries its total."""

    def __init__(self) -> None:
        self._suppressed = metrics.counter(PANES_SUPPRESSED_COUNTER)

    def process(self, grouped: tuple[str, Iterable[dict[str, Any]]]):
        counts: dict[tuple[int, int], int] = {}
        for pane in sorted(grouped[1], key=_window_size_then_start):
            if pane["view_count"] <= 0:
                self._suppressed.inc()
                continue
            start, end = pane["window_start"], pane["window_end"]
            merged = _windows_within(counts, start, end)
            total = pane["view_count"] + sum(counts.pop(key) for key in merged)
            counts[(start, end)] = total
            yield {**pane, "view_count": total}


class AccumulatePanes(beam.PTransform[beam.PCollection, beam.PCollection]):
    """DISCARDING PropertyViewCount panes (each counting only the views since its window's last
    pane) → ACCUMULATING ones (each carrying its window's full count so far), minus those that
    add no view.

    Output: the summed dicts, in the global window, with their timestamps. A window is
    remembered until its end + ``forget_after_s``; a pane arriving later starts it over (Beam
    drops such views before they reach here: ``forget_after_s`` exceeds the allowed lateness).
    Exact as long as each pane is delivered once (a runner's exactly-once state: Flink's
    checkpoints, Prism's and the DirectRunner's bundles).

    ``bounded=True`` (a bounded input only: on an unbounded one the global window's grouping
    would never fire): the panes are grouped per property at the end of the input and summed in
    one step, without state or timer; each window's last output carries the same total, with
    timestamps at the end of the global window. Why: Flink's batch runner runs a stateful DoFn as
    one SDK bundle per key, and one more per key with a timer (docs/performance.md, change 23).
    """

    def __init__(self, forget_after_s: int, bounded: bool = False) -> None:
        super().__init__()
        _check_seconds("forget_after_s", forget_after_s, allow_zero=True)
        self._forget_after_ms = forget_after_s * 1000
        self._bounded = bounded

    def expand(self, panes: beam.PCollection) -> beam.PCollection:
        keyed = (
            panes
            | "KeyByProperty"
            >> beam.Map(_keyed_by_property).with_output_types(tuple[str, dict[str, Any]])
            | "GlobalWindow" >> beam.WindowInto(window.GlobalWindows())
        )
        if self._bounded:
            return (
                keyed
                | "GroupPerProperty" >> beam.GroupByKey()
                | "AccumulateGrouped" >> beam.ParDo(_AccumulateGroupedPanesFn())
            )
        return keyed | "Accumulate" >> beam.ParDo(_AccumulatePanesFn(self._forget_after_ms))


def _check_seconds(name: str, value: int | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value}")


def _trigger(early_firing_s: int | None) -> trigger.AfterWatermark:
    early = trigger.AfterProcessingTime(early_firing_s) if early_firing_s else None
    return trigger.AfterWatermark(early=early, late=trigger.AfterCount(1))


class _CountViewsInWindows(beam.PTransform[beam.PCollection[Decoded], beam.PCollection]):
    """Windows by ``window_fn`` with the module's trigger, then counts views per property.

    ``bounded=True`` is for a bounded input only (a batch run): the panes are summed by one
    grouping per property instead of ``AccumulatePanes``' stateful DoFn; same final counts.
    """

    def __init__(
        self,
        window_fn: window.WindowFn,
        allowed_lateness_s: int,
        early_firing_s: int | None,
        bounded: bool = False,
    ) -> None:
        super().__init__()
        _check_seconds("allowed_lateness_s", allowed_lateness_s, allow_zero=True)
        _check_seconds("early_firing_s", early_firing_s)
        self._window_fn = window_fn
        self._allowed_lateness_s = allowed_lateness_s
        self._early_firing_s = early_firing_s
        self._bounded = bounded

    def key_into_windows(self) -> KeyIntoWindows:
        """The step before the shuffle on its own: each view keyed by property, in its windows,
        summed per bundle. For views produced in several places (disjoint parts of a topic in
        different workers), apply it to each part where it is produced and give ``expand`` the
        tuple of keyed parts: the counts are those of the parts' union."""
        windows = beam.WindowInto(
            self._window_fn,
            trigger=_trigger(self._early_firing_s),
            # DISCARDING here, summed by AccumulatePanes: see the module docstring.
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=self._allowed_lateness_s,
        )
        # Keyed, windowed and summed per bundle in one step (transforms/window_assign.py: a
        # WindowInto step costs ~8 µs per view on the worker).
        return KeyIntoWindows(
            _property_of, windows, output_type=tuple[str, int], sum_in_bundle=True
        )

    def expand(
        self, views: beam.PCollection[Decoded] | tuple[beam.PCollection, ...]
    ) -> beam.PCollection:
        """``views``: Decoded views, or a tuple of parts already through ``key_into_windows``."""
        keyed = keyed_input(views, "KeyByPropertyIntoWindows", self.key_into_windows)
        return (
            keyed
            | "CountPerProperty" >> beam.CombinePerKey(sum)
            | "FormatPanes" >> beam.ParDo(_FormatPanes())
            # Twice the lateness: a margin past the last pane Beam can fire (end + lateness).
            | "AccumulatePanes" >> AccumulatePanes(2 * self._allowed_lateness_s, self._bounded)
        )


class CountViewsPerProperty(_CountViewsInWindows):
    """Views per property in tumbling event-time windows (default 1 h), as PropertyViewCount."""

    def __init__(
        self,
        window_size_s: int = 3600,
        allowed_lateness_s: int = DEFAULT_ALLOWED_LATENESS_S,
        early_firing_s: int | None = None,
        bounded: bool = False,
    ) -> None:
        _check_seconds("window_size_s", window_size_s)
        super().__init__(
            window.FixedWindows(window_size_s), allowed_lateness_s, early_firing_s, bounded
        )


class CountViewsPerPropertyHopping(_CountViewsInWindows):
    """Views per property in hopping (sliding) windows of ``size_s`` starting every
    ``period_s``; a view counts in every window that covers it (size/period of them)."""

    def __init__(
        self,
        size_s: int = 3600,
        period_s: int = 900,
        allowed_lateness_s: int = DEFAULT_ALLOWED_LATENESS_S,
        early_firing_s: int | None = None,
        bounded: bool = False,
    ) -> None:
        _check_seconds("size_s", size_s)
        _check_seconds("period_s", period_s)
        if period_s > size_s:
            raise ValueError(
                f"period_s ({period_s}) must be <= size_s ({size_s}): a longer period leaves "
                "gaps between windows; use CountViewsPerProperty for tumbling windows"
            )
        super().__init__(
            window.SlidingWindows(size_s, period_s), allowed_lateness_s, early_firing_s, bounded
        )


class SessionizeViews(_CountViewsInWindows):
    """Views per property in sessions of activity: a session ends after ``gap_s`` without a
    view of that property; sessions that come to overlap (a view filling the gap) merge, and the
    output's window_start/window_end are the merged session's."""

    def __init__(
        self,
        gap_s: int = 1800,
        allowed_lateness_s: int = DEFAULT_ALLOWED_LATENESS_S,
        early_firing_s: int | None = None,
        bounded: bool = False,
    ) -> None:
        _check_seconds("gap_s", gap_s)
        super().__init__(window.Sessions(gap_s), allowed_lateness_s, early_firing_s, bounded)
