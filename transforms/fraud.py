"""Excessive viewing: one alert when a user views more than N listings in a 10-minute window.

Input: ``Decoded`` PropertyView records with event-time timestamps (``AssignEventTime``), normally
the gate's ``on_time`` output. Output: Alert dicts (``schemas/alert.avsc``).

Semantics:

- Windows: tumbling event-time windows of ``window_s`` (default 600 s) per user_id.
- Early alert: a stateful DoFn keyed by user_id counts views per (user, window) in state (Beam
  scopes user state to the key *and* the window) and emits the Alert on the view that takes the
  count past ``threshold`` — the 51st view with the defaults — without waiting for the watermark
  or the window end. ``view_count`` is the count at the crossing (threshold + 1).
- Exactly one alert per (user, window) within a running pipeline: the count in state only grows,
  and only the view taking it from ``threshold`` to ``threshold + 1`` alerts, so later views, late
  views (a late pane) and records delivered twice do not alert again. ``alert_id`` is
  ``f"{user_id}:{window_start_ms}"``, deterministic, so a replay by a restarted pipeline (whose
  state is gone) produces the same id and a consumer of the user_id-keyed alerts topic can drop
  it.
- Allowed lateness (default 70 min, the gate's window + lateness, as in ``windowing.py``): views up
  to that late still count in their window. The state is cleared by an event-time timer at
  ``window.max_timestamp() + allowed_lateness`` (``max_timestamp``, not ``end``: a timer at the
  window end lost output on Prism, DESIGN.md). A view arriving after that (the gate in front makes
  this impossible with the defaults) would start a fresh count for an expired window.
- Counter ``alerts`` (transforms/metrics.py).

Compared with the Kafka Streams seed (a windowed count, then a filter on count > N, which emits on
every update past N): the alert fires once per window, at the crossing, and never repeats.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.transforms import userstate, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Duration

from transforms import metrics
from transforms.event_time import to_epoch_ms
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


def _user_of(decoded: Decoded) -> tuple[str, int]:
    return decoded.payload["user_id"], 1


class _AlertOnce(beam.DoFn):
    """Counts a user's views per window; alerts once, on the view that crosses the threshold."""

    COUNT = userstate.ReadModifyWriteStateSpec("count", VarIntCoder())
    EXPIRY = userstate.TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, threshold: int, allowed_lateness_s: int) -> None:
        self._threshold = threshold
        self._allowed_lateness = Duration(seconds=allowed_lateness_s)
        self._alerts = metrics.counter(metrics.ALERTS)

    def process(
        self,
        user_and_one: tuple[str, int],
        win: window.BoundedWindow = beam.DoFn.WindowParam,
        count_state=beam.DoFn.StateParam(COUNT),  # noqa: B008 (Beam idiom)
        expiry=beam.DoFn.TimerParam(EXPIRY),  # noqa: B008
    ):
        user_id, _ = user_and_one
        before = count_state.read() or 0
        after = before + 1
        count_state.write(after)
        expiry.set(win.max_timestamp() + self._allowed_lateness)
        if crosses_threshold(before, after, self._threshold):
            self._alerts.inc()
            yield alert(
                user_id, to_epoch_ms(win.start), to_epoch_ms(win.end), after, self._threshold
            )

    @userstate.on_timer(EXPIRY)
    def expire(
        self,
        count_state=beam.DoFn.StateParam(COUNT),  # noqa: B008
    ):
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
        self._window_s = window_s
        self._allowed_lateness_s = allowed_lateness_s

    def expand(self, views: beam.PCollection[Decoded]) -> beam.PCollection:
        return (
            views
            # A str key: a deterministic coder for the state key.
            | "KeyByUser" >> beam.Map(_user_of).with_output_types(tuple[str, int])
            | "ViewWindows"
            >> beam.WindowInto(
                window.FixedWindows(self._window_s), allowed_lateness=self._allowed_lateness_s
            )
            | "AlertOnce" >> beam.ParDo(_AlertOnce(self._threshold, self._allowed_lateness_s))
        )
