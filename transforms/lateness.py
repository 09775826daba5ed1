"""The late-data gate: "late in the log", decided per Kafka partition, the same live or replayed.

Rule (wire contract, lead's decision). Per (topic, partition), the *stream time* before a record is
the largest payload ``event_time`` among the records at lower offsets of that partition. A record
is **late** when ``stream_time_before >= window_end + allowed_lateness``, ``window_end`` being the
end of the record's tumbling window of ``window_size`` (aligned to the epoch; default 1 h; allowed
lateness default 10 min). A late record goes to the ``late`` output as a LateRecord dict (with
``late_by_ms = stream_time_before - (window_end + allowed_lateness)``, >= 0) and is never counted;
every other record goes to ``on_time`` unchanged, with its timestamp and window unchanged. For
every key: on_time + late = input (counters ``on_time`` and ``late``).

Why not Beam's watermark: on a replayed backlog a whole bundle moves the watermark at once, so
Beam finds nothing late (DESIGN.md, "Lateness on a replayed backlog"), and the watermark mixes all
partitions, so one partition racing ahead would make another's records late. The gate uses only
the partition's own records, in offset order, so its answer depends on the log alone.

Mechanism. Two labelled steps:

1. ``BatchPerPartition``: a plain DoFn that buffers the records of each bundle per
   (topic, partition, window) and emits, at the end of the bundle, one batch per partition
   sorted by offset (stamped with the batch's smallest element timestamp, so nothing is emitted
   ahead of its own data).
2. ``DecideLateness``: a stateful DoFn keyed by "topic/partition" that walks each batch in offset
   order and keeps the stream time in a ``ReadModifyWriteState`` (plus the last offset seen).

Limits per runner (what the order of arrival at ``DecideLateness`` can be):

- Offset order inside a bundle is restored by the sort, whatever the runner did. This matters on
  Prism: it hands a stateful stage each key's pending elements **sorted by element timestamp**
  (engine/elementmanager.go, ``elementHeap.Less``), which on its own would put a late record
  before the newer records that precede it in the log and make nothing late.
- Across batches, order is arrival order. Kafka's read emits a partition in offset order; the
  Direct runner and Flink keep that order per key (Flink: FIFO channels between a source subtask
  and the keyed operator). Prism may reorder two batches of one partition that are pending at the
  same time (by their timestamps); Dataflow gives no order guarantee. A batch that arrives with an
  offset at or below the last one processed is still decided (against the stream time so far:
  its records can only be judged *more* late, never less) and counted in ``gate_out_of_order``,
  so a reordering runner is visible in the metrics rather than silent.
- State is per partition and never expires (one long per partition); the gate runs in the global
  window (the Kafka read's) — put it before any ``WindowInto``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.transforms import userstate
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from transforms import metrics
from transforms.event_time import event_time_ms
from transforms.types import Decoded

# Counters, in transforms/metrics.py's namespace: records passed on, records held back (for every
# partition on_time + late = input), and batches that arrived below the last offset seen.
ON_TIME_COUNTER = "on_time"
LATE_COUNTER = metrics.LATE
OUT_OF_ORDER_COUNTER = "gate_out_of_order"

LATE_STAGE = "late_gate"
DEFAULT_WINDOW_SIZE_S = 3600
DEFAULT_ALLOWED_LATENESS_S = 600

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


def partition_key(decoded: Decoded) -> str:
    """The gate's state key: one stream time per Kafka (topic, partition)."""
    return f"{decoded.source.topic}/{decoded.source.partition}"


# ---- Beam pieces ------------------------------------------------------------------------------


class _BatchPerPartition(beam.DoFn):
    """Buffers a bundle per (partition, window); emits each buffer sorted by offset.

    Output: ``(partition_key, ((Decoded, timestamp_micros), ...))`` in the buffer's window.
    """

    def start_bundle(self) -> None:
        self._buffers: dict[tuple[str, Any], list[tuple[Decoded, int]]] = defaultdict(list)

    def process(
        self,
        decoded: Decoded,
        timestamp: Timestamp = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
    ) -> None:
        self._buffers[(partition_key(decoded), window)].append((decoded, timestamp.micros))

    def finish_bundle(self):
        for (key, window), items in self._buffers.items():
            items.sort(key=lambda item: item[0].source.offset)
            earliest = min(micros for _, micros in items)
            yield WindowedValue((key, tuple(items)), Timestamp(micros=earliest), [window])
        self._buffers.clear()


class _DecideLateness(beam.DoFn):
    """Walks a partition's batch in offset order against the partition's stream time."""

    STREAM_TIME = userstate.ReadModifyWriteStateSpec("stream_time_ms", VarIntCoder())
    LAST_OFFSET = userstate.ReadModifyWriteStateSpec("last_offset", VarIntCoder())

    def __init__(self, window_size_ms: int, allowed_lateness_ms: int) -> None:
        self._window_size_ms = window_size_ms
        self._allowed_lateness_ms = allowed_lateness_ms
        self._on_time = metrics.counter(ON_TIME_COUNTER)
        self._late = metrics.counter(LATE_COUNTER)
        self._out_of_order = metrics.counter(OUT_OF_ORDER_COUNTER)

    def process(
        self,
        keyed_batch: tuple[str, tuple[tuple[Decoded, int], ...]],
        stream_time_state=beam.DoFn.StateParam(STREAM_TIME),  # noqa: B008 (Beam idiom)
        last_offset_state=beam.DoFn.StateParam(LAST_OFFSET),  # noqa: B008
    ):
        _, batch = keyed_batch
        stream_time = stream_time_state.read()
        last_offset = last_offset_state.read()
        # The batch is sorted already; sorting again keeps this DoFn correct on its own.
        ordered = sorted(batch, key=lambda item: item[0].source.offset)
        if last_offset is not None and ordered and ordered[0][0].source.offset <= last_offset:
            self._out_of_order.inc()
        for decoded, micros in ordered:
            event_time = event_time_ms(decoded.payload)
            late_by = late_by_ms(
                stream_time, event_time, self._window_size_ms, self._allowed_lateness_ms
            )
            if late_by is None:
                self._on_time.inc()
                yield TimestampedValue(decoded, Timestamp(micros=micros))
            else:
                self._late.inc()
                window_end = tumbling_window_end_ms(event_time, self._window_size_ms)
                yield beam.pvalue.TaggedOutput(
                    LATE_TAG,
                    TimestampedValue(
                        late_record(decoded, window_end, late_by), Timestamp(micros=micros)
                    ),
                )
            stream_time = event_time if stream_time is None else max(stream_time, event_time)
            offset = decoded.source.offset
            last_offset = offset if last_offset is None else max(last_offset, offset)
        if stream_time is not None:
            stream_time_state.write(stream_time)
            last_offset_state.write(last_offset)


class GateResult(NamedTuple):
    """``on_time``: the Decoded records to count; ``late``: LateRecord dicts, never counted."""

    on_time: beam.PCollection
    late: beam.PCollection


class GateLateRecords(beam.PTransform[beam.PCollection[Decoded], GateResult]):
    """Splits records into on-time and "late in the log" (see the module docstring).

    Apply to the Kafka read's records (global window) before any windowing; the outputs keep
    each record's timestamp.
    """

    def __init__(
        self,
        window_size_s: int = DEFAULT_WINDOW_SIZE_S,
        allowed_lateness_s: int = DEFAULT_ALLOWED_LATENESS_S,
    ) -> None:
        super().__init__()
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
                _DecideLateness(self._window_size_ms, self._allowed_lateness_ms)
            ).with_outputs(LATE_TAG, main=ON_TIME_TAG)
        )
        return GateResult(on_time=results[ON_TIME_TAG], late=results[LATE_TAG])
