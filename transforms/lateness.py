"""The late-data gate: "late in the log", decided per Kafka partition, the same live or replayed.

Rule (wire contract, lead's decision). Per (topic, partition), the *stream time* before a record is
the largest payload ``event_time`` among the records at lower offsets of that partition. A record
is **late** when ``stream_time_before >= window_end + allowed_lateness``, ``window_end`` being the
end of the record's tumbling window of ``window_size`` (aligned to the epoch; default 1 h; allowed
lateness default 10 min). A late record goes to the ``late`` output as a LateRecord dict (with
``late_by_ms = stream_time_before - (window_end + allowed_lateness)``, >= 0) and is never counted;
every other record goes to ``on_time`` unchanged, with its timestamp and window unchanged (with
``stamp_event_time=True``: its timestamp set to its payload's ``event_time``, as
``transforms/event_time.AssignEventTime`` would set it, without a step of its own). For every
key: on_time + late = input (counters ``on_time`` and ``late``).

Why not Beam's watermark: on a replayed backlog a whole bundle moves the watermark at once, so
Beam finds nothing late, and the watermark mixes all
partitions, so one partition racing ahead would make another's records late. The gate uses only
the partition's own records, in offset order, so its answer depends on the log alone.

Mechanism. Two labelled steps:

1. ``BatchPerPartition``: a plain DoFn that buffers the records of each bundle per
   (topic, partition, window) and emits, at the end of the bundle, one batch per partition
   sorted by offset, stamped with its first offset (as microseconds after the epoch: a timestamp
   that grows with the offset, so that Prism, which hands a key's pending elements over sorted by
   timestamp, delivers pending batches in offset order). The batches' timestamps are far behind
   any watermark;
   that is harmless in the global window (nothing expires), and Prism holds the stage's output
   watermark back while batches are pending, which is what a hold should do.
2. ``DecideLateness``: a stateful DoFn keyed by "topic/partition" that decides records in offset
   order, keeps the stream time in a ``ReadModifyWriteState`` and the next expected offset, and
   re-emits each record with its own timestamp. A batch that arrives ahead of a missing offset
   is held (``BagState``) until the missing records arrive, so the decision does not depend on
   the order in which batches arrive.

Limits per runner (what the order of arrival at ``DecideLateness`` can be):

- Inside a bundle, offset order is restored by the sort, whatever the runner did. This matters on
  Prism: it hands a stateful stage each key's pending elements **sorted by element timestamp**
  (engine/elementmanager.go, ``elementHeap.Less``), which with event-time timestamps would put a
  late record before the newer records that precede it in the log and make nothing late.
- Across bundles, Prism runs bundles of a stage in parallel and they complete in any order
  (verified: a live TestStream on Prism without the hold-back misjudged 12 of 240 records).
  The hold-back makes this exact as long as offsets are contiguous, which they are in a topic
  written without transactions and not compacted. Where the log has real gaps (transaction
  markers, compaction) the gate gives up waiting once more than ``max_held`` records (default
  10 000) wait, and releases them in offset order (counter ``gate_offset_gaps``); held records
  are also flushed when the input ends (an event-time timer at the end of the global window).
  The Direct runner and Flink streaming keep arrival order per key (Flink: FIFO channels), which
  is offset order since Kafka's read emits a partition in offset order; Dataflow gives no
  guarantee, the hold-back covers it too. Flink's batch mode (a bounded read) hands a stateful
  stage a key's elements in no particular order; it is exact because a bounded read's bundle
  holds a partition's whole range, so each partition crosses as one batch (verified: batches cut
  at 1 000 records arrived out of order there and made 16 045 of 100 226 records late instead of
  20, docs/performance.md).
- The first batch seen for a partition fixes where the expected offsets start; records below it
  arriving later (possible only if the very first bundles race) and records redelivered by a
  retry are decided at once against the stream time so far — they can only be judged *more*
  late, never less — and counted in ``gate_out_of_order``.
- State is per partition and never expires (one long per partition); the gate runs in the global
  window (the Kafka read's) — put it before any ``WindowInto``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import apache_beam as beam
from apache_beam.coders import PickleCoder, VarIntCoder
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.window import BoundedWindow, GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from schemas.contract import ALLOWED_LATENESS_S, WINDOW_SIZE_S
from transforms import metrics
from transforms.event_time import event_time_ms
from transforms.types import Decoded, KafkaRecord

# Counters, in transforms/metrics.py's namespace: records passed on, records held back (for every
# partition on_time + late = input), and batches that arrived below the last offset seen.
ON_TIME_COUNTER = "on_time"
LATE_COUNTER = metrics.LATE
OUT_OF_ORDER_COUNTER = "gate_out_of_order"
OFFSET_GAPS_COUNTER = "gate_offset_gaps"
DEFAULT_MAX_HELD = 10_000

T = TypeVar("T")

LATE_STAGE = "late_gate"
DEFAULT_WINDOW_SIZE_S = WINDOW_SIZE_S
DEFAULT_ALLOWED_LATENESS_S = ALLOWED_LATENESS_S

ON_TIME_TAG = "on_time"
LATE_TAG = "late"


# ---- business rules (no Beam) ---------------------------------------------------------------


def tumbling_window_end_ms(event_time: int, window_size_ms: int) -> int:
    """End (exclusive) of the epoch-aligned tumbling window holding ``event_time``."""
    return (event_time // window_size_ms + 1) * window_size_ms


def late_by_ms(
    stream_time_before: int | None, event_time: int, window_size_ms: int, allowed_lateness_ms: int
) -> int | None:
    """How far past ``window_end + allowed_lateness`` the stream time was, or None if on time.

    ``stream_time_before`` is the partition's largest event time before this record (None for
    the first record of a partition: nothing came before, so it is on time).
    """
    if stream_time_before is None:
        return None
    deadline = tumbling_window_end_ms(event_time, window_size_ms) + allowed_lateness_ms
    if stream_time_before >= deadline:
        return stream_time_before - deadline
    return None


def late_record(decoded: Decoded, window_end: int, late_by: int) -> dict[str, Any]:
    """The LateRecord dict (schemas/late_record.avsc) for a record the gate held back."""
    source = decoded.source
    return {
        "topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
        "key": source.key,
        "value": source.value,
        "record_timestamp": source.timestamp_ms,
        "event_time": event_time_ms(decoded.payload),
        "window_end": window_end,
        "late_by_ms": late_by,
        "stage": LATE_STAGE,
    }


class Release(NamedTuple):
    """What ``release_in_offset_order`` lets through now, and what it keeps waiting."""

    released: list  # in offset order
    held: list  # waiting for a missing offset
    next_offset: int | None  # the offset expected next
    behind: int  # released items below the expected offset (arrived after a higher one)
    gap_skipped: bool  # gave up waiting for a missing offset (more than max_held waiting)


def release_in_offset_order(
    items: list[T], next_offset: int | None, max_held: int, offset_of: Callable[[T], int]
) -> Release:
    """Releases ``items`` in offset order as far as the offsets are contiguous from
    ``next_offset`` (None: start at the smallest offset given); items behind ``next_offset``
    (redelivered, or arriving after a higher offset was released) are released at once; the rest
    are held until the missing offset arrives, or released anyway once more than ``max_held``
    wait (a real gap in the log: transaction markers, compaction)."""
    ordered = sorted(items, key=offset_of)
    released: list[T] = []
    behind = 0
    index = 0
    for index, item in enumerate(ordered):  # noqa: B007 (index used after the loop)
        offset = offset_of(item)
        if next_offset is None:
            next_offset = offset
        if offset < next_offset:
            behind += 1
        elif offset == next_offset:
            next_offset += 1
        else:
            break
        released.append(item)
    else:
        index = len(ordered)
    held = ordered[index:]
    if len(held) > max_held:
        released.extend(held)
        return Release(released, [], offset_of(held[-1]) + 1, behind, True)
    return Release(released, held, next_offset, behind, False)


def partition_key(decoded: Decoded) -> str:
    """The gate's state key: one stream time per Kafka (topic, partition)."""
    return f"{decoded.source.topic}/{decoded.source.partition}"


# ---- Beam pieces ------------------------------------------------------------------------------

# One record of a batch as the gate holds it and as it crosses the shuffle in front of
# DecideLateness: plain tuples, dicts, str, bytes and ints only. Two reasons (docs/performance.md):
# Beam's FastPrimitivesCoder encodes these natively, where it pickles a NamedTuple such as
# ``Decoded``; and Python's garbage collector stops tracking a plain tuple or dict that holds
# only such atomic values, where it keeps tracking (and rescanning at every full collection) each
# NamedTuple. A bounded read gives a bundle a whole partition, so the gate holds 10^5 records
# at once: as NamedTuples they made the collector a large share of the worker's time.
WireItem = tuple[dict[str, Any], int, tuple[Any, ...], int]
# Where a WireItem keeps its source record's offset (``source`` is a KafkaRecord as a tuple).
_SOURCE, _OFFSET = 2, KafkaRecord._fields.index("offset")


def to_wire(decoded: Decoded, micros: int) -> WireItem:
    """``decoded`` with its timestamp as the gate's shuffle carries it (``from_wire`` inverts)."""
    return decoded.payload, decoded.schema_id, tuple(decoded.source), micros


def from_wire(item: WireItem) -> tuple[Decoded, int]:
    payload, schema_id, source, micros = item
    return Decoded(payload, schema_id, KafkaRecord._make(source)), micros


def _wire_offset(item: WireItem) -> int:
    return item[_SOURCE][_OFFSET]


def _as_wire(item: WireItem | tuple[Decoded, int]) -> WireItem:
    """A held record as a ``WireItem`` (state written by an earlier version of the gate held
    ``(Decoded, micros)`` pairs)."""
    return to_wire(*item) if len(item) == 2 else item


class _BatchPerPartition(beam.DoFn):
    """Buffers a bundle per (partition, window); emits each buffer sorted by offset.

    Output: ``(partition_key, (WireItem, ...))`` in the buffer's window: each record as
    ``to_wire(decoded, timestamp_micros)``, buffered in that form (see ``WireItem``).
    """

    def start_bundle(self) -> None:
        self._buffers: dict[tuple[str, Any], list[WireItem]] = defaultdict(list)

    def process(
        self,
        decoded: Decoded,
        windowed: WindowedValue = beam.DoFn.WindowedValueParam,
    ) -> None:
        # One WindowedValueParam rather than TimestampParam + WindowParam: a WindowParam makes
        # Beam rebuild the DoFn's arguments for every element (``insert_values_in_args``), which
        # cost ~6 % of the Python worker's busy time on Flink (docs/performance.md). A value in
        # several windows goes to the buffer of each, as the per-window calls did.
        key, item = partition_key(decoded), to_wire(decoded, windowed.timestamp.micros)
        for window in windowed.windows:
            self._buffers[(key, window)].append(item)

    def finish_bundle(self):
        for (key, window), items in self._buffers.items():
            items.sort(key=_wire_offset)
            # The batch's timestamp is its first offset (as microseconds after the epoch), not an
            # event time: Prism hands a stateful stage each key's pending elements sorted by
            # timestamp, so this keeps batches of one partition in offset order there. The
            # records themselves get their own timestamps back in DecideLateness.
            first_offset = _wire_offset(items[0])
            yield WindowedValue((key, tuple(items)), Timestamp(micros=first_offset), [window])
        self._buffers.clear()


class _DecideLateness(beam.DoFn):
    """Decides a partition's records in offset order against the partition's stream time,
    holding back records that arrive ahead of a missing offset (see the module docstring)."""

    STREAM_TIME = userstate.ReadModifyWriteStateSpec("stream_time_ms", VarIntCoder())
    NEXT_OFFSET = userstate.ReadModifyWriteStateSpec("next_offset", VarIntCoder())
    HELD = userstate.BagStateSpec("held", PickleCoder())
    END_OF_INPUT = userstate.TimerSpec("end_of_input", TimeDomain.WATERMARK)

    def __init__(
        self,
        window_size_ms: int,
        allowed_lateness_ms: int,
        max_held: int,
        stamp_event_time: bool = False,
    ) -> None:
        self._window_size_ms = window_size_ms
        self._allowed_lateness_ms = allowed_lateness_ms
        self._max_held = max_held
        self._stamp_event_time = stamp_event_time
        self._on_time = metrics.counter(ON_TIME_COUNTER)
        self._late = metrics.counter(LATE_COUNTER)
        self._out_of_order = metrics.counter(OUT_OF_ORDER_COUNTER)
        self._gaps = metrics.counter(OFFSET_GAPS_COUNTER)

    def process(
        self,
        keyed_batch: tuple[str, tuple[WireItem, ...]],
        stream_time_state=beam.DoFn.StateParam(STREAM_TIME),  # noqa: B008 (Beam idiom)
        next_offset_state=beam.DoFn.StateParam(NEXT_OFFSET),  # noqa: B008
        held_state=beam.DoFn.StateParam(HELD),  # noqa: B008
        end_of_input=beam.DoFn.TimerParam(END_OF_INPUT),  # noqa: B008
        window: BoundedWindow = beam.DoFn.WindowParam,
    ):
        _, batch = keyed_batch
        held = [_as_wire(item) for item in held_state.read()]
        release = release_in_offset_order(
            [*held, *batch], next_offset_state.read(), self._max_held, _wire_offset
        )
        if release.gap_skipped:
            self._gaps.inc()
        self._out_of_order.inc(release.behind)
        held_state.clear()
        for item in release.held:
            held_state.add(item)
        if release.held:
            # Flushes whatever is still held when the input ends (bounded runs, tests).
            end_of_input.set(GlobalWindow().max_timestamp())
        if release.next_offset is not None:
            next_offset_state.write(release.next_offset)
        yield from self._decide(release.released, stream_time_state, window)

    @userstate.on_timer(END_OF_INPUT)
    def flush(
        self,
        stream_time_state=beam.DoFn.StateParam(STREAM_TIME),  # noqa: B008
        held_state=beam.DoFn.StateParam(HELD),  # noqa: B008
        window: BoundedWindow = beam.DoFn.WindowParam,
    ):
        held = sorted((_as_wire(item) for item in held_state.read()), key=_wire_offset)
        held_state.clear()
        if held:
            self._gaps.inc()
        yield from self._decide(held, stream_time_state, window)

    def _decide(self, items: list[WireItem], stream_time_state, window: BoundedWindow):
        """Decides ``items`` in order; each becomes a ``Decoded`` only here, as it is emitted,
        with its own timestamp (an on-time one with its event time if ``stamp_event_time``), in
        the batch's window (a ``WindowedValue``: for a ``TimestampedValue`` Beam would call the
        window function per record to find the window it already knows, docs/performance.md
        change 11)."""
        stream_time = stream_time_state.read()
        windows = (window,)
        stamp_event_time = self._stamp_event_time
        for item in items:
            decoded, micros = from_wire(item)
            event_time = event_time_ms(decoded.payload)
            late_by = late_by_ms(
                stream_time, event_time, self._window_size_ms, self._allowed_lateness_ms
            )
            if late_by is None:
                self._on_time.inc()
                on_time_micros = event_time * 1000 if stamp_event_time else micros
                yield WindowedValue(decoded, Timestamp(micros=on_time_micros), windows)
            else:
                self._late.inc()
                window_end = tumbling_window_end_ms(event_time, self._window_size_ms)
                yield beam.pvalue.TaggedOutput(
                    LATE_TAG,
                    WindowedValue(
                        late_record(decoded, window_end, late_by),
                        Timestamp(micros=micros),
                        windows,
                    ),
                )
            stream_time = event_time if stream_time is None else max(stream_time, event_time)
        if stream_time is not None:
            stream_time_state.write(stream_time)


class GateResult(NamedTuple):
    """``on_time``: the Decoded records to count; ``late``: LateRecord dicts, never counted."""

    on_time: beam.PCollection
    late: beam.PCollection


class GateLateRecords(beam.PTransform[beam.PCollection[Decoded], GateResult]):
    """Splits records into on-time and "late in the log" (see the module docstring).

    Apply to the Kafka read's records (global window) before any windowing; the outputs keep
    each record's timestamp, except with ``stamp_event_time=True``: each on-time record leaves
    the gate stamped with its payload's ``event_time`` (what ``AssignEventTime`` after the gate
    would do, saving that step's per-record cost; the late records keep theirs).
    """

    def __init__(
        self,
        window_size_s: int = DEFAULT_WINDOW_SIZE_S,
        allowed_lateness_s: int = DEFAULT_ALLOWED_LATENESS_S,
        max_held: int = DEFAULT_MAX_HELD,
        *,
        stamp_event_time: bool = False,
    ) -> None:
        super().__init__()
        self._stamp_event_time = stamp_event_time
        if max_held < 0:
            raise ValueError(f"max_held must be a record count >= 0, got {max_held}")
        self._max_held = max_held
        if window_size_s <= 0:
            raise ValueError(f"window_size_s must be > 0 seconds, got {window_size_s}")
        if allowed_lateness_s < 0:
            raise ValueError(f"allowed_lateness_s must be >= 0 seconds, got {allowed_lateness_s}")
        self._window_size_ms = window_size_s * 1000
        self._allowed_lateness_ms = allowed_lateness_s * 1000

    def expand(self, records: beam.PCollection[Decoded]) -> GateResult:
        results = (
            records
            # A str key: a deterministic coder for the state key.
            | "BatchPerPartition"
            >> beam.ParDo(_BatchPerPartition()).with_output_types(tuple[str, Any])
            | "DecideLateness"
            >> beam.ParDo(
                _DecideLateness(
                    self._window_size_ms,
                    self._allowed_lateness_ms,
                    self._max_held,
                    self._stamp_event_time,
                )
            ).with_outputs(LATE_TAG, main=ON_TIME_TAG)
        )
        return GateResult(on_time=results[ON_TIME_TAG], late=results[LATE_TAG])
