"""Bounded Kafka reads of explicit offset ranges, resolved when the pipeline is built.

Why not Beam's read: Beam 2.73's cross-language ``KafkaIO.Read`` takes a stop *time* but no stop
*offsets*, and finds each partition's stop offset with ``offsetsForTimes``; a partition with no
record at or after that time (empty, or quiet since before it) makes
``ReadFromKafkaDoFn.initialRestriction`` throw ``IllegalStateException``. Its ``max_num_records``
waits forever on a partition holding fewer than its share. So a backfill "up to a time" or "up to
now" resolves, once, every partition's ``[start, stop)`` with the Kafka consumer API (watermarks,
``offsets_for_times``, committed offsets) and reads exactly those ranges:

- stop: the first offset whose timestamp is at or after ``stop_time_ms``; the partition's current
  end (high watermark) when no record is that recent, or when no stop time is given ("up to the
  current end of every partition").
- start: the first offset at or after ``start_time_ms`` when given; else the consumer group's
  committed offset; else ``auto.offset.reset`` (earliest: the log start, latest: the end). Never
  before the log start nor after ``stop``.

Nothing is written to the topics. Records appended after resolution are not read, so the run ends
on empty, quiet and busy partitions alike.

``ReadKafkaRanges``: ``PBegin`` -> ``PCollection[KafkaRecord]``, the records of every range in
offset order per partition, element timestamp = the record's timestamp (CreateTime per the wire
contract), global window. One reader per partition, in parallel (Reshuffle). The reader is
confluent-kafka (librdkafka): security settings come from the client properties file
(``--kafka_config_file``), mapped to librdkafka by ``transforms.io.client_config`` where the reader
runs; other consumer properties pass through and must be names librdkafka knows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from transforms.types import KafkaRecord

# librdkafka needs a group id even for assign(); nothing is committed under it unless asked.
RESOLVER_GROUP = "property-streams-range-read"
# A range read fails when its partition yields nothing for this long (records deleted by
# retention before they were read, or the broker gone): every wait is bounded.
DEFAULT_IDLE_TIMEOUT_S = 120.0
_DROP_KEYS = ("key.deserializer", "value.deserializer")


class PartitionRange(NamedTuple):
    """Offsets ``[start, stop)`` of one partition (``start == stop``: nothing to read)."""

    topic: str
    partition: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        """Offsets in the range (records, minus any compacted away or transaction markers)."""
        return self.stop - self.start


class PartitionShare(NamedTuple):
    """A share of a topic's partitions: those whose number ``p`` has ``p % count`` in
    ``residues`` (with 4 partitions, ``((0,), 4)`` is partition 0 and ``((1, 2, 3), 4)`` the
    rest). Shares of one topic whose residues cover ``0..count-1`` once, read by separate steps
    (in workers of their own, say), read every partition exactly once between them."""

    residues: tuple[int, ...]
    count: int

    def check(self) -> PartitionShare:
        """This share, or ``ValueError`` when its residues are not distinct ones of ``count``."""
        residues = tuple(self.residues)
        if (
            self.count < 1
            or not residues
            or len(set(residues)) != len(residues)
            or not all(0 <= r < self.count for r in residues)
        ):
            raise ValueError(
                "a partition share is (residues, count) with distinct residues 0 <= r < count, "
                f"got {tuple(self)}"
            )
        return PartitionShare(residues, self.count)

    def holds(self, partition: int) -> bool:
        return partition % self.count in self.residues


class KafkaRangeError(RuntimeError):
    """Ranges could not be resolved or read; the message says what to check."""


def client_config(
    consumer_config: Mapping[str, str], security_file: str | None = None
) -> dict[str, str]:
    """The librdkafka consumer config for range reads: the given properties (deserializers
    dropped: records stay bytes), no auto commit, a group id when none is given; with
    ``security_file`` (a Kafka client properties file), its security settings mapped to
    librdkafka (``transforms.io.client_config``) instead of the given ones."""
    from transforms.io.client_config import with_file_security

    config = {k: v for k, v in consumer_config.items() if k not in _DROP_KEYS}
    config = with_file_security(config, security_file)
    config.setdefault("group.id", RESOLVER_GROUP)
    config["enable.auto.commit"] = "false"
    return config


# librdkafka errors (error_cb) that retrying will not heal: a resolution fails on them at once.
_FATAL = ("_AUTHENTICATION", "_SSL")


def _consumer(config: Mapping[str, str], errors: list[Any] | None = None) -> Any:
    """A librdkafka consumer; client-level errors are appended to ``errors`` when given."""
    from confluent_kafka import Consumer, KafkaException

    settings: dict[str, Any] = dict(config)
    if errors is not None:
        settings["error_cb"] = errors.append
        settings["log_level"] = 0  # errors are reported by us, once
    try:
        return Consumer(settings)
    except KafkaException as exc:
        raise KafkaRangeError(
            f"the Kafka consumer of the bounded read refused its configuration: {exc}. "
            "Give consumer properties with librdkafka's names, and security settings in the "
            "client properties file (--kafka_config_file)"
        ) from exc


def _describe(consumer: Any, topic: str, deadline: float, errors: list[Any], where: str) -> Any:
    """``list_topics(topic)``, retried in short steps until ``deadline``, failing at once on an
    authentication or TLS error."""
    from confluent_kafka import KafkaException

    wait_s = 0.0  # a healthy broker answers at once: no fixed wait before the first ask
    while True:
        # Serves error_cb (nothing is assigned yet: no record is consumed); after a failed ask,
        # gives a refused login or handshake 0.1 s to be reported, so it fails at once.
        consumer.poll(wait_s)
        wait_s = 0.1
        fatal = [e for e in errors if e.name() in _FATAL]
        if fatal:
            raise KafkaRangeError(
                f"Kafka at {where} refused the connection: {fatal[0].name()}: {fatal[0].str()}"
            )
        step = min(2.0, deadline - time.monotonic())
        try:
            return consumer.list_topics(topic, timeout=max(step, 0.1))
        except KafkaException as exc:
            if time.monotonic() >= deadline:
                raise KafkaRangeError(
                    f"cannot reach Kafka at {where} to bound the read of {topic!r}: {exc}"
                ) from exc


def resolve_ranges(
    consumer_config: Mapping[str, str],
    topics: Sequence[str],
    *,
    stop_time_ms: int | None = None,
    start_time_ms: int | None = None,
    security_file: str | None = None,
    timeout_s: float = 30.0,
    share: PartitionShare | None = None,
) -> list[PartitionRange]:
    """Every partition's ``[start, stop)`` of ``topics`` now (see the module docstring); with
    ``share``, only the partitions of that share (``PartitionShare``).

    ``consumer_config`` holds ``bootstrap.servers`` and optionally ``group.id`` and
    ``auto.offset.reset``; ``security_file`` as in ``client_config``. Raises
    ``KafkaRangeError`` for a missing topic or an unreachable broker (after ``timeout_s``)."""
    from confluent_kafka import TopicPartition

    config = client_config(consumer_config, security_file)
    use_committed = "group.id" in consumer_config
    earliest = config.get("auto.offset.reset", "latest") in ("earliest", "smallest", "beginning")
    errors: list[Any] = []
    consumer = _consumer(config, errors)
    where = config.get("bootstrap.servers")
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    ranges: list[PartitionRange] = []
    try:
        for topic in topics:
            metadata = _describe(consumer, topic, deadline, errors, where)
            described = metadata.topics.get(topic)
            if described is None or described.error is not None or not described.partitions:
                raise KafkaRangeError(
                    f"topic {topic!r} does not exist on {where}: "
                    "create it (python -m runners.local topics) or fix the topic name"
                )
            numbers = sorted(p for p in described.partitions if share is None or share.holds(p))
            if not numbers:
                continue  # a share of fewer partitions than shares: nothing of this topic
            bounds = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=left())
                for p in numbers
            }
            # Stop: the partition's end, or its first record at/after the stop time (-1: none
            # that recent, so everything there is before it: the end).
            stops = {p: high for p, (_, high) in bounds.items()}
            if stop_time_ms is not None:
                stops.update(_offsets_for_time(consumer, topic, numbers, stop_time_ms, left()))
            if start_time_ms is not None:
                starts = {p: high for p, (_, high) in bounds.items()}
                starts.update(_offsets_for_time(consumer, topic, numbers, start_time_ms, left()))
            else:
                starts = {p: (low if earliest else high) for p, (low, high) in bounds.items()}
                if use_committed:
                    committed = consumer.committed(
                        [TopicPartition(topic, p) for p in numbers], timeout=left()
                    )
                    starts.update({c.partition: c.offset for c in committed if c.offset >= 0})
            for p in numbers:
                low = bounds[p][0]
                start = min(max(starts[p], low), stops[p])
                ranges.append(PartitionRange(topic, p, start, stops[p]))
    finally:
        consumer.close()
    return ranges


def _offsets_for_time(
    consumer: Any, topic: str, partitions: Sequence[int], time_ms: int, timeout_s: float
) -> dict[int, int]:
    """Partition -> first offset with a timestamp at or after ``time_ms``, for the partitions
    that have one."""
    from confluent_kafka import TopicPartition

    found = consumer.offsets_for_times(
        [TopicPartition(topic, p, time_ms) for p in partitions], timeout=timeout_s
    )
    return {f.partition: f.offset for f in found if f.offset >= 0}


def read_range(
    config: Mapping[str, str],
    rng: PartitionRange,
    *,
    commit: bool = False,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    batch: int = 1000,
) -> Iterator[KafkaRecord]:
    """The records of ``rng`` in offset order. Ends when the consumer's position reaches
    ``rng.stop`` (offsets a compaction removed, or transaction markers, are skipped); fails with
    ``KafkaRangeError`` when nothing arrives for ``idle_timeout_s``. ``commit``: commit
    ``rng.stop`` for the consumer group once the range is read."""
    from confluent_kafka import KafkaError, TopicPartition

    if rng.size <= 0:
        return
    consumer = _consumer({**config, "enable.partition.eof": "true"})
    tp = TopicPartition(rng.topic, rng.partition, rng.start)
    try:
        consumer.assign([tp])
        position = rng.start
        last_progress = time.monotonic()
        while position < rng.stop:
            messages = consumer.consume(min(batch, rng.stop - position), timeout=1.0)
            for msg in messages:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        # At the end: the position may have skipped markers up to rng.stop.
                        position = max(position, msg.offset())
                        continue
                    if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED and not commit:
                        # librdkafka looks up the (mandatory) group's coordinator even for an
                        # assigned read; a user without rights on it still fetches the range.
                        continue
                    raise KafkaRangeError(f"reading {rng.topic}[{rng.partition}]: {error}")
                offset = msg.offset()
                position = offset + 1
                if offset >= rng.stop:
                    break
                kind, timestamp_ms = msg.timestamp()
                yield KafkaRecord(
                    key=msg.key(),
                    value=msg.value(),
                    topic=rng.topic,
                    partition=rng.partition,
                    offset=offset,
                    timestamp_ms=timestamp_ms if kind != 0 else -1,
                    headers=tuple(msg.headers() or ()),
                )
            if messages:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_timeout_s:
                raise KafkaRangeError(
                    f"reading {rng.topic}[{rng.partition}] offsets [{rng.start}, {rng.stop}): "
                    f"nothing arrived for {idle_timeout_s:.0f} s at offset {position} (records "
                    "deleted by retention, or the broker unreachable)"
                )
        if commit:
            consumer.commit(
                offsets=[TopicPartition(rng.topic, rng.partition, rng.stop)], asynchronous=False
            )
    finally:
        consumer.close()


class _ReadRange(beam.DoFn):
    """One ``PartitionRange`` in, its records out, each stamped with its record timestamp.

    Holds the security file's path, not its settings: secrets are read where the reader runs,
    never carried in the job's definition."""

    def __init__(
        self,
        config: Mapping[str, str],
        security_file: str | None,
        commit: bool,
        idle_timeout_s: float,
    ):
        self._base_config = dict(config)
        self._security_file = security_file
        self._commit = commit
        self._idle_timeout_s = idle_timeout_s
        self._config: dict[str, str] | None = None

    def setup(self) -> None:
        self._config = client_config(self._base_config, self._security_file)

    def process(
        self, rng: PartitionRange, windowed: WindowedValue = beam.DoFn.WindowedValueParam
    ) -> Iterator[WindowedValue]:
        assert self._config is not None
        # Each record in the range's windows with its record timestamp, in exact microseconds;
        # a WindowedValue, not a TimestampedValue, for which Beam would call the window function
        # per record (docs/performance.md change 11).
        windows = windowed.windows
        for record in read_range(
            self._config, rng, commit=self._commit, idle_timeout_s=self._idle_timeout_s
        ):
            yield WindowedValue(
                record, Timestamp(micros=max(record.timestamp_ms, 0) * 1000), windows
            )


class ReadKafkaRanges(beam.PTransform[beam.pvalue.PBegin, beam.PCollection[KafkaRecord]]):
    """Reads exactly ``ranges`` (from ``resolve_ranges``): a bounded PCollection of
    ``KafkaRecord``, element timestamps = record timestamps, global window.

    ``consumer_config``: consumer properties with ``bootstrap.servers``; ``security_file``: a
    Kafka client properties file whose security settings the readers use (read where they run);
    ``commit``: commit each range's stop offset for ``group.id`` once it is read (a later run
    resumes there)."""

    def __init__(
        self,
        ranges: Sequence[PartitionRange],
        consumer_config: Mapping[str, str],
        *,
        security_file: str | None = None,
        commit: bool = False,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        super().__init__()
        if "bootstrap.servers" not in consumer_config:
            raise ValueError("consumer_config needs 'bootstrap.servers'")
        if commit and "group.id" not in consumer_config:
            raise ValueError("commit=True needs a consumer group: set consumer_config['group.id']")
        self._ranges = [PartitionRange(*r) for r in ranges]
        base = dict(consumer_config)
        if security_file is not None:
            from transforms.io.client_config import SECURITY_PREFIXES

            base = {k: v for k, v in base.items() if not k.startswith(SECURITY_PREFIXES)}
        self._base_config = base
        self._security_file = security_file
        # A configuration librdkafka refuses fails here, at construction.
        _consumer(client_config(base, security_file)).close()
        self._commit = commit
        self._idle_timeout_s = idle_timeout_s

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection[KafkaRecord]:
        reader = _ReadRange(
            self._base_config, self._security_file, self._commit, self._idle_timeout_s
        )
        return (
            pbegin
            | "Ranges" >> beam.Create([r for r in self._ranges if r.size > 0])
            # One reader per partition, in parallel, not fused with the Create.
            | "OneReaderPerPartition" >> beam.Reshuffle()
            | "ReadRange" >> beam.ParDo(reader).with_output_types(KafkaRecord)
        )
