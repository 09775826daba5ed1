"""Excessive viewing: one alert when a user views more than N listings in a 10-minute window.

Input: ``Decoded`` PropertyView records with event-time timestamps (``AssignEventTime``), normally
the gate's ``on_time`` output. Output: Alert dicts (``schemas/alert.avsc``).

Semantics:

- Windows: tumbling event-time Beam windows of ``window_s`` (default 600 s, epoch-aligned) per
  user_id.
- Count: a combiner (``CountPerUserWindow``) counts each user's views per window. Trigger
  ``AfterWatermark(early=AfterCount(threshold + 1), late=AfterCount(1))``, ACCUMULATING, allowed
  lateness ``allowed_lateness_s``: in streaming, an EARLY pane fires as soon as a pane holds
  ``threshold + 1`` views (the 51st view with the defaults) — without waiting for the watermark or
  the window end, so the alert follows the crossing view by the pipeline's own latency only — then
  the ON_TIME pane at the window end and a LATE pane per late view. Every pane carries the
  window's full count so far. In a bounded (batch) run the runner fires each window once, with
  its final count.
- ``early_alerts=False`` (for bounded runs: the pipeline sets it when its read is bounded): no
  early firing, and each bundle's views are summed per (user, window) before the grouping
  (``KeyIntoWindows(sum_in_bundle=True)``), so the shuffle carries one partial count per user
  and window of a bundle instead of one element per view (an ``AfterCount`` trigger counts
  elements, so the early firing needs every view to arrive alone, and no runner here lifts this
  combine). The alerts are the same (id, count at the crossing, once per window); they come with
  the window's ON_TIME pane instead of at the crossing view, which a bounded run cannot show
  anyway.
- Alert once (``AlertOnce``): only panes whose count is past ``threshold`` reach a small stateful
  DoFn keyed by (user_id, window start), in the global window, which remembers that the window
  has alerted and emits the Alert for the first such pane only. Later panes (more views, late
  views, records delivered twice) do not alert again. ``view_count`` is the count at the crossing
  (``threshold + 1``), whatever the pane's count: it is what the crossing view made it, and it does
  not depend on how a runner groups views into panes (a batch run sees only the final count).
  The Alert carries the timestamp of the latest view of its pane (``OUTPUT_AT_LATEST``): in
  streaming, the crossing view's.
- Why a combiner and not a per-view stateful count: a stateful DoFn reads and writes its state
  over the Fn API for every view, and Flink's batch runner gives every key its own bundle (plus
  one more to fire its timer), so one (user, window) key is one or two tiny bundles
  (docs/performance.md has the cost). A combiner runs as a plain grouping in the runner; only the
  few windows past the threshold reach state.
- Why the "alerted" flag lives in the global window: Prism 2.73 garbage-collects the user state of
  a stateful stage as soon as the watermark passes the window's end, ignoring the allowed lateness
  (its stateful stages get no windowing strategy), so per-Beam-window state could forget that a
  window had alerted and a late pane would alert again. The
  flag is cleared by an event-time timer at the window's last millisecond + allowed lateness (the
  last millisecond, not the end: a timer at the window end lost output on Prism).
- Allowed lateness (default 70 min, the gate's window + lateness, as in ``windowing.py``): views up
  to that late (by the watermark) still count in their window; later ones are dropped by Beam (the
  gate in front makes this impossible with the defaults; bounded runs use 7 days). Prism restarts
  a window whose views reach it behind the watermark (as for the hourly counts,
  ``windowing.py``), so on Prism a crossing made of views on both sides of such a restart can be
  missed.
- ``alert_id`` is ``f"{user_id}:{window_start_ms}"``, deterministic, so a replay by a restarted
  pipeline (whose state is gone) produces the same id and a consumer of the user_id-keyed alerts
  topic can drop it.
- Counter ``alerts`` (transforms/metrics.py).

Compared with the Kafka Streams seed (a 10-minute windowed count, then ``filter(count > 50)`` on
its changelog, which emits an alert for every update past 50: the 51st, 52nd, ... view): the alert
fires once per window, at the crossing, and never repeats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.coders import BooleanCoder
from apache_beam.transforms import trigger, userstate, window
from apache_beam.transforms.timeutil import TimeDomain

from schemas.contract import BEAM_ALLOWED_LATENESS_S
from transforms import metrics
from transforms.event_time import to_epoch_ms, to_timestamp
from transforms.types import Decoded
from transforms.window_assign import KeyIntoWindows, keyed_input

DEFAULT_THRESHOLD = 50
DEFAULT_WINDOW_S = 600
# Behind the late gate: its 1 h window + 10 min lateness (schemas/contract.py).
DEFAULT_ALLOWED_LATENESS_S = BEAM_ALLOWED_LATENESS_S
REASON = "excessive_viewing"


# ---- business rules (no Beam) ---------------------------------------------------------------


def crosses_threshold(count_before: int, count_after: int, threshold: int) -> bool:
    """True for the view that takes a window's count from ``<= threshold`` to ``> threshold``."""
    return count_before <= threshold < count_after


def past_threshold(count: int, threshold: int) -> bool:
    """True when a window's count is past ``threshold`` (it has crossed it)."""
    return count > threshold


def alert_id(user_id: str, window_start_ms: int) -> str:
    """Deterministic id of the alert of ``user_id`` for the window starting at the given ms."""
    return f"{user_id}:{window_start_ms}"


def alert(
    user_id: str, window_start: int, window_end: int, view_count: int, threshold: int
) -> dict[str, Any]:
    """An Alert dict (schemas/alert.avsc)."""
    window_s = (window_end - window_start) // 1000
    return {
        "alert_id": alert_id(user_id, window_start),
        "user_id": user_id,
        "window_start": window_start,
        "window_end": window_end,
        "view_count": view_count,
        "reason": f"{REASON}: more than {threshold} views in {window_s} s",
    }


# ---- Beam pieces ------------------------------------------------------------------------------


def window_start_ms(event_time: int, window_ms: int) -> int:
    """Start of the epoch-aligned tumbling window of ``window_ms`` holding ``event_time``."""
    return event_time - event_time % window_ms


def _user_of(decoded: Decoded) -> tuple[str, int]:
    return decoded.payload["user_id"], 1


def _count_past_threshold(user_count: tuple[str, int], threshold: int) -> bool:
    return past_threshold(user_count[1], threshold)


def _summed_past_threshold(
    user_counts: tuple[str, Iterable[int]], threshold: int
) -> Iterator[tuple[str, int]]:
    """A (user, window)'s partial counts summed, when the sum is past ``threshold``."""
    user_id, counts = user_counts
    count = sum(counts)
    if past_threshold(count, threshold):
        yield user_id, count


def _keyed_by_user_window(
    user_count: tuple[str, int], win: window.IntervalWindow = beam.DoFn.WindowParam
) -> tuple[str, tuple[str, int, int]]:
    user_id, _ = user_count
    start, end = to_epoch_ms(win.start), to_epoch_ms(win.end)
    return alert_id(user_id, start), (user_id, start, end)


class _AlertOnce(beam.DoFn):
    """Alerts for the first pane of a (user, window) past the threshold; forgets the window when
    its allowed lateness has passed."""

    ALERTED = userstate.ReadModifyWriteStateSpec("alerted", BooleanCoder())
    EXPIRY = userstate.TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, threshold: int, allowed_lateness_ms: int) -> None:
        self._threshold = threshold
        self._allowed_lateness_ms = allowed_lateness_ms
        self._alerts = metrics.counter(metrics.ALERTS)

    def process(
        self,
        keyed: tuple[str, tuple[str, int, int]],
        alerted=beam.DoFn.StateParam(ALERTED),  # noqa: B008 (Beam idiom)
        expiry=beam.DoFn.TimerParam(EXPIRY),  # noqa: B008
    ):
        _, (user_id, start, end) = keyed
        if alerted.read():
            return
        alerted.write(True)
        # The window's last millisecond + allowed lateness (not its end: see the module doc).
        expiry.set(to_timestamp(end - 1 + self._allowed_lateness_ms))
        self._alerts.inc()
        yield alert(user_id, start, end, self._threshold + 1, self._threshold)

    @userstate.on_timer(EXPIRY)
    def expire(self, alerted=beam.DoFn.StateParam(ALERTED)):  # noqa: B008
        alerted.clear()


class DetectExcessiveViewing(beam.PTransform[beam.PCollection[Decoded], beam.PCollection]):
    """One Alert per (user, window) with more than ``threshold`` views in ``window_s`` seconds,
    emitted on the crossing view in streaming; with ``early_alerts=False`` at the window's
    ON_TIME pane, the views summed per bundle first (see the module docstring)."""

    def __init__(
        self,
        threshold: int = DEFAULT_THRESHOLD,
        window_s: int = DEFAULT_WINDOW_S,
        allowed_lateness_s: int = DEFAULT_ALLOWED_LATENESS_S,
        early_alerts: bool = True,
    ) -> None:
        super().__init__()
        if threshold < 0:
            raise ValueError(f"threshold must be a view count >= 0, got {threshold}")
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
        if allowed_lateness_s < 0:
            raise ValueError(f"allowed_lateness_s must be >= 0 seconds, got {allowed_lateness_s}")
        self._threshold = threshold
        self._window_s = window_s
        self._allowed_lateness_s = allowed_lateness_s
        self._early_alerts = early_alerts

    def key_into_windows(self) -> KeyIntoWindows:
        """The step before the shuffle on its own: each view keyed by user, in its fraud
        window (summed per bundle without early alerts). For views produced in several places
        (disjoint parts of a topic in different workers), apply it to each part where it is
        produced and give ``expand`` the tuple of keyed parts: the alerts are those of the
        parts' union."""
        # Early: the pane that takes the count past the threshold fires at once.
        early = trigger.AfterCount(self._threshold + 1) if self._early_alerts else None
        fraud_windows = beam.WindowInto(
            window.FixedWindows(self._window_s),
            trigger=trigger.AfterWatermark(early=early, late=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            allowed_lateness=self._allowed_lateness_s,
            timestamp_combiner=window.TimestampCombiner.OUTPUT_AT_LATEST,
        )
        # Keyed and windowed in one step (transforms/window_assign.py: a WindowInto step costs
        # ~8 µs per view on the worker); summed per bundle without early alerts.
        return KeyIntoWindows(
            _user_of,
            fraud_windows,
            output_type=tuple[str, int],
            sum_in_bundle=not self._early_alerts,
        )

    def expand(
        self, views: beam.PCollection[Decoded] | tuple[beam.PCollection, ...]
    ) -> beam.PCollection:
        """``views``: Decoded views, or a tuple of parts already through ``key_into_windows``."""
        keyed = keyed_input(views, "KeyByUserIntoFraudWindows", self.key_into_windows)
        if self._early_alerts:
            past = (
                keyed
                | "CountPerUserWindow" >> beam.CombinePerKey(sum)
                | "PastThreshold" >> beam.Filter(_count_past_threshold, self._threshold)
            )
        else:
            # The grouping and one step that sums and filters: one DoFn call per (user, window)
            # less than the combiner and the filter, which no runner here lifts (the AfterCount
            # late trigger keeps Prism 2.73 from it, docs/performance.md change 16); a bounded
            # run's (user, window) groups are most of what it shuffles (change 19).
            past = (
                keyed
                | "GroupPerUserWindow" >> beam.GroupByKey()
                | "SumPastThreshold"
                >> beam.FlatMap(_summed_past_threshold, self._threshold).with_output_types(
                    tuple[str, int]
                )
            )
        return (
            past
            # A str key: a deterministic coder for the state key.
            | "KeyByUserWindow"
            >> beam.Map(_keyed_by_user_window).with_output_types(tuple[str, tuple[str, int, int]])
            | "GlobalWindow" >> beam.WindowInto(window.GlobalWindows())
            | "AlertOnce"
            >> beam.ParDo(_AlertOnce(self._threshold, self._allowed_lateness_s * 1000))
        )
