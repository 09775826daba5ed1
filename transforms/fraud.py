"""Excessive viewing: one alert when a user views more than N listings in a 10-minute window.

Input: ``Decoded`` PropertyView records with event-time timestamps (``AssignEventTime``), normally
the gate's ``on_time`` output. Output: Alert dicts (``schemas/alert.avsc``).

Semantics:

- Windows: tumbling event-time windows of ``window_s`` (default 600 s, epoch-aligned) per user_id,
  computed from the payload's event time by a plain function.
- Early alert: a stateful DoFn keyed by (user_id, window start), in the global window, counts the
  views in state and emits the Alert on the view that takes the count past ``threshold`` — the
  51st view with the defaults — without waiting for the watermark or the window end.
  ``view_count`` is the count at the crossing (threshold + 1).
- Why the window is in the key and not a Beam window: Prism 2.73 garbage-collects the user state
  of a stateful stage as soon as the watermark passes the window's end, ignoring the allowed
  lateness (its stateful stages get no windowing strategy: ``execute.go`` gives one only to
  aggregations), so per-Beam-window state lost the count and a late view started it again at 0
  (a duplicate alert, verified). Global-window state lives until our own timer clears it.
- Exactly one alert per (user, window) within a running pipeline: the count in state only grows,
  and only the view taking it from ``threshold`` to ``threshold + 1`` alerts, so later views, late
  views (a late pane) and records delivered twice do not alert again. ``alert_id`` is
  ``f"{user_id}:{window_start_ms}"``, deterministic, so a replay by a restarted pipeline (whose
  state is gone) produces the same id and a consumer of the user_id-keyed alerts topic can drop
  it.
- Allowed lateness (default 70 min, the gate's window + lateness, as in ``windowing.py``): views up
  to that late still count in their window. The state is cleared by an event-time timer at the
  window's last millisecond + allowed lateness (the last millisecond, not the end: a timer at the
  window end lost output on Prism, DESIGN.md). A view arriving after that (the gate in front makes
  this impossible with the defaults) would start a fresh count for an expired window. The timer
  holds this stage's output watermark up to that time; nothing downstream of the alerts is
  windowed. Where event time does not advance (Flink streaming here, DESIGN.md) the timer never
  fires: alerts are still emitted at once, but the state of past windows is never cleared.
- Counter ``alerts`` (transforms/metrics.py).

Compared with the Kafka Streams seed (a 10-minute windowed count, then ``filter(count > 50)`` on
its changelog, which emits an alert for every update past 50: the 51st, 52nd, ... view): the alert
fires once per window, at the crossing, and never repeats.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.transforms import userstate, window
from apache_beam.transforms.timeutil import TimeDomain

from transforms import metrics
from transforms.event_time import event_time_ms, to_timestamp
from transforms.types import Decoded

DEFAULT_THRESHOLD = 50
DEFAULT_WINDOW_S = 600
# The gate's defaults (transforms/lateness.py): 1 h window + 10 min lateness.
DEFAULT_ALLOWED_LATENESS_S = 3600 + 600
REASON = "excessive_viewing"


# ---- business rules (no Beam) ---------------------------------------------------------------


def crosses_threshold(count_before: int, count_after: int, threshold: int) -> bool:
    """True for the view that takes a window's count from ``<= threshold`` to ``> threshold``."""
    return count_before <= threshold < count_after


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


def _keyed_by_user_window(decoded: Decoded, window_ms: int) -> tuple[str, tuple[str, int]]:
    user_id = decoded.payload["user_id"]
    start = window_start_ms(event_time_ms(decoded.payload), window_ms)
    return f"{user_id}:{start}", (user_id, start)


class _AlertOnce(beam.DoFn):
    """Counts the views of one (user, window) key; alerts once, on the view crossing the
    threshold; clears the count when the window's allowed lateness has passed."""

    COUNT = userstate.ReadModifyWriteStateSpec("count", VarIntCoder())
    EXPIRY = userstate.TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, threshold: int, window_ms: int, allowed_lateness_ms: int) -> None:
        self._threshold = threshold
        self._window_ms = window_ms
        self._allowed_lateness_ms = allowed_lateness_ms
        self._alerts = metrics.counter(metrics.ALERTS)

    def process(
        self,
        keyed: tuple[str, tuple[str, int]],
        count_state=beam.DoFn.StateParam(COUNT),  # noqa: B008 (Beam idiom)
        expiry=beam.DoFn.TimerParam(EXPIRY),  # noqa: B008
    ):
        _, (user_id, start) = keyed
        end = start + self._window_ms
        before = count_state.read() or 0
        after = before + 1
        count_state.write(after)
        # The window's last millisecond + allowed lateness (not its end: see the module doc).
        expiry.set(to_timestamp(end - 1 + self._allowed_lateness_ms))
        if crosses_threshold(before, after, self._threshold):
            self._alerts.inc()
            yield alert(user_id, start, end, after, self._threshold)

    @userstate.on_timer(EXPIRY)
    def expire(self, count_state=beam.DoFn.StateParam(COUNT)):  # noqa: B008
        count_state.clear()


class DetectExcessiveViewing(beam.PTransform[beam.PCollection[Decoded], beam.PCollection]):
    """One Alert per (user, window) with more than ``threshold`` views in ``window_s`` seconds,
    emitted on the crossing view (see the module docstring)."""

    def __init__(
        self,
        threshold: int = DEFAULT_THRESHOLD,
        window_s: int = DEFAULT_WINDOW_S,
        allowed_lateness_s: int = DEFAULT_ALLOWED_LATENESS_S,
    ) -> None:
        super().__init__()
        if threshold < 0:
            raise ValueError(f"threshold must be a view count >= 0, got {threshold}")
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
        if allowed_lateness_s < 0:
            raise ValueError(f"allowed_lateness_s must be >= 0 seconds, got {allowed_lateness_s}")
        self._threshold = threshold
        self._window_ms = window_s * 1000
        self._allowed_lateness_ms = allowed_lateness_s * 1000

    def expand(self, views: beam.PCollection[Decoded]) -> beam.PCollection:
        return (
            views
            # A str key: a deterministic coder for the state key.
            | "KeyByUserWindow"
            >> beam.Map(_keyed_by_user_window, self._window_ms).with_output_types(
                tuple[str, tuple[str, int]]
            )
            | "GlobalWindow" >> beam.WindowInto(window.GlobalWindows())
            | "AlertOnce"
            >> beam.ParDo(_AlertOnce(self._threshold, self._window_ms, self._allowed_lateness_ms))
        )
