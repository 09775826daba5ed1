"""Property-event aggregations and filters: running counts by zip, high-value listings, and the
event-type filter (LISTING_UPDATED) that feeds enrichment.

Input: ``Decoded`` PropertyEvent records (valid, and on time per ``GateLateRecords``).

``CountByZip`` is the Kafka Streams seed's KTable: a running count of property events per zip code,
emitted as an update (ZipCount dict) for every event. It runs in the global window with a stateful
DoFn keyed by zip code, so it does not wait for any watermark and needs no trigger: each event
updates its zip's count immediately. A late-but-allowed event (passed by the gate) is simply
counted when it arrives — the count is of events seen, not of a time window — and the update it
emits corrects the previous one. Consumers keep the last update per zip code (the output topic is
keyed by zip_code). ``last_event_time`` is the largest event time counted for that zip, so it does
not depend on the order in which a runner hands the events over.

``CountByZip(bounded=True)`` is for a bounded (batch) input only: the events are grouped per zip
code (``GroupByKey`` in the global window, which fires once at the end of the input) and one step
numbers each group's events, emitting the same updates (count 1..n per zip, each with the largest
event time counted so far). A batch run hands a stateful DoFn a key's events in no particular
order anyway, so the updates are those the stateful DoFn would emit for one such order. Why:
Flink's batch runner runs a stateful DoFn as one SDK bundle per key (every bundle a round trip,
a state fetch and a flush of the fused Kafka write), while a grouping's values reach the worker
in one bundle per partition (docs/performance.md, change 21).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.transforms import userstate, window

from schemas.contract import EVENT_TYPES, LISTING_UPDATED
from transforms.types import Decoded

DEFAULT_HIGH_VALUE_THRESHOLD = 500_000


# ---- business rules (no Beam) ---------------------------------------------------------------


def is_high_value(payload: dict[str, Any], threshold: int) -> bool:
    """A listing whose price is strictly above ``threshold`` dollars."""
    return payload["price"] > threshold


def has_event_type(payload: dict[str, Any], event_type: str) -> bool:
    return payload["event_type"] == event_type


def zip_count(zip_code: str, count: int, last_event_time: int) -> dict[str, Any]:
    """A ZipCount dict (schemas/zip_count.avsc)."""
    return {"zip_code": zip_code, "count": count, "last_event_time": last_event_time}


# ---- Beam pieces ------------------------------------------------------------------------------


def _decoded_is_high_value(decoded: Decoded, threshold: int) -> bool:
    return is_high_value(decoded.payload, threshold)


def _decoded_has_event_type(decoded: Decoded, event_type: str) -> bool:
    return has_event_type(decoded.payload, event_type)


def _zip_and_time(decoded: Decoded) -> tuple[str, int]:
    return decoded.payload["zip_code"], int(decoded.payload["event_time"])


class _RunningCount(beam.DoFn):
    COUNT = userstate.ReadModifyWriteStateSpec("count", VarIntCoder())
    LAST_EVENT_TIME = userstate.ReadModifyWriteStateSpec("last_event_time_ms", VarIntCoder())

    def process(
        self,
        zip_and_time: tuple[str, int],
        count_state=beam.DoFn.StateParam(COUNT),  # noqa: B008 (Beam idiom)
        last_state=beam.DoFn.StateParam(LAST_EVENT_TIME),  # noqa: B008
    ):
        zip_code, event_time = zip_and_time
        count = (count_state.read() or 0) + 1
        count_state.write(count)
        last = last_state.read()
        last = event_time if last is None else max(last, event_time)
        last_state.write(last)
        yield zip_count(zip_code, count, last)


def running_zip_counts(zip_and_times: tuple[str, Iterable[int]]) -> Iterator[dict[str, Any]]:
    """A zip code's events numbered in the order given: one ZipCount per event, its count the
    events so far and ``last_event_time`` the largest event time so far (``_RunningCount``'s
    updates for that order)."""
    zip_code, event_times = zip_and_times
    last = None
    for count, event_time in enumerate(event_times, start=1):
        last = event_time if last is None else max(last, event_time)
        yield zip_count(zip_code, count, last)


class CountByZip(beam.PTransform[beam.PCollection[Decoded], beam.PCollection]):
    """Running count of property events per zip code, one ZipCount update per event.

    Global window, no trigger: a stateful DoFn per zip code (see the module docstring). With
    ``bounded=True`` (a bounded input only: on an unbounded one the global window's grouping
    would never fire) the events are grouped per zip code at the end of the input and numbered
    in one step; same updates.
    """

    def __init__(self, bounded: bool = False) -> None:
        super().__init__()
        self._bounded = bounded

    def expand(self, events: beam.PCollection[Decoded]) -> beam.PCollection:
        # A str key: a deterministic coder for the state key.
        keyed = events | "KeyByZip" >> beam.Map(_zip_and_time).with_output_types(tuple[str, int])
        if not _in_default_global_window(keyed):
            # Only when needed: a WindowInto costs ~6 µs per element on the worker even when it
            # changes nothing (docs/performance.md change 11).
            keyed = keyed | "GlobalWindow" >> beam.WindowInto(window.GlobalWindows())
        if self._bounded:
            return (
                keyed
                | "GroupPerZip" >> beam.GroupByKey()
                | "RunningCounts" >> beam.FlatMap(running_zip_counts)
            )
        return keyed | "RunningCount" >> beam.ParDo(_RunningCount())


def _in_default_global_window(pcoll: beam.PCollection) -> bool:
    """True when ``pcoll`` already has what ``WindowInto(GlobalWindows())`` would give it: the
    global window with the default trigger, accumulation, timestamp combiner and lateness."""
    return bool(pcoll.windowing == beam.WindowInto(window.GlobalWindows()).windowing)


class HighValueListings(beam.PTransform[beam.PCollection[Decoded], beam.PCollection[Decoded]]):
    """The property events priced strictly above ``threshold`` (default 500 000 dollars)."""

    def __init__(self, threshold: int = DEFAULT_HIGH_VALUE_THRESHOLD) -> None:
        super().__init__()
        if threshold < 0:
            raise ValueError(f"threshold must be a price >= 0 dollars, got {threshold}")
        self._threshold = threshold

    def expand(self, events: beam.PCollection[Decoded]) -> beam.PCollection[Decoded]:
        return events | "PriceAboveThreshold" >> beam.Filter(
            _decoded_is_high_value, self._threshold
        )


class FilterEventType(beam.PTransform[beam.PCollection[Decoded], beam.PCollection[Decoded]]):
    """The property events of one ``event_type`` (a PropertyEvent EventType symbol)."""

    def __init__(self, event_type: str) -> None:
        super().__init__()
        if event_type not in EVENT_TYPES:
            raise ValueError(f"event_type must be one of {sorted(EVENT_TYPES)}, got {event_type!r}")
        self._event_type = event_type

    def expand(self, events: beam.PCollection[Decoded]) -> beam.PCollection[Decoded]:
        return events | f"Keep{self._event_type.title().replace('_', '')}" >> beam.Filter(
            _decoded_has_event_type, self._event_type
        )


class ListingUpdates(FilterEventType):
    """The LISTING_UPDATED events (the seed's filter in front of enrichment)."""

    def __init__(self) -> None:
        super().__init__(LISTING_UPDATED)
