"""Event time: the one step that stamps each element with its payload's ``event_time``.

Elements are ``Decoded`` records (``transforms/types.py``) of PropertyEvent or PropertyView, whose
``payload["event_time"]`` is epoch milliseconds. ``AssignEventTime`` sets the Beam element
timestamp to that instant, exactly (microsecond arithmetic, no float rounding).

Watermarks are not invented here: they come from the source (Kafka IO's CreateTime policy; per the
wire contract producers set the record timestamp to the event time, capped at send time). Moving
an element's timestamp earlier than the watermark makes it late for Beam's windows; those windows
keep it as long as their allowed lateness covers it (see ``transforms/windowing.py``), and the
"late in the log" decision is made before, by ``transforms/lateness.GateLateRecords``.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from transforms.types import Decoded


def event_time_ms(payload: dict[str, Any]) -> int:
    """The event time of a PropertyEvent/PropertyView payload, epoch milliseconds."""
    return int(payload["event_time"])


def to_timestamp(epoch_ms: int) -> Timestamp:
    """A Beam timestamp for epoch milliseconds, exact (no float)."""
    return Timestamp(micros=epoch_ms * 1000)


def to_epoch_ms(ts: Timestamp) -> int:
    """Epoch milliseconds of a Beam timestamp (floored)."""
    return ts.micros // 1000


class _StampFn(beam.DoFn):
    """The element, its timestamp set to its payload's event time, in the windows it was in.

    A ``WindowedValue`` output rather than a ``TimestampedValue``: for the latter Beam's output
    handler builds an ``AssignContext`` and calls the input's ``WindowFn.assign`` per element
    (~0.7 µs more here, docs/performance.md change 11), and would move an element of a
    non-global window into the window of its new timestamp."""

    def process(self, decoded: Decoded, windowed: WindowedValue = beam.DoFn.WindowedValueParam):
        yield WindowedValue(decoded, to_timestamp(event_time_ms(decoded.payload)), windowed.windows)


class AssignEventTime(beam.PTransform[beam.PCollection[Decoded], beam.PCollection[Decoded]]):
    """Sets every element's timestamp to ``payload["event_time"]``; windows are not changed.

    One labelled step (``AssignEventTime``); the watermark stays the source's.
    """

    def expand(self, pcoll: beam.PCollection[Decoded]) -> beam.PCollection[Decoded]:
        return pcoll | "AssignEventTime" >> beam.ParDo(_StampFn()).with_output_types(Decoded)
