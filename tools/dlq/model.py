"""The DLQ tool's rules, with no broker: a dead letter as read (``DlqEntry``), what to select,
the summary per ``(stage, error_type)``, and the replay plan (original key, value, timestamp,
partition, plus the two headers that say where a replayed record came from)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import NamedTuple

from pipelines.options import PropertyTopics
from transforms.dead_letter import DeadLetter

DEFAULT_DLQ_TOPIC = PropertyTopics().dlq
SCHEMA = "DeadLetter"
ORIGIN_HEADER = "dlq.origin"
SOURCE_HEADER = "dlq.source"
PARTITIONING = ("original", "key")


class DlqEntry(NamedTuple):
    """One dead letter as read from the dead-letter topic, with its own coordinates there.

    ``timestamp_ms`` is the DLQ record's Kafka timestamp (when it was dead-lettered); the original
    record's timestamp is ``dead_letter.record_timestamp_ms``.
    """

    dead_letter: DeadLetter
    dlq_topic: str
    partition: int
    offset: int
    timestamp_ms: int


class Unreadable(NamedTuple):
    """A record of the dead-letter topic that is not a decodable ``DeadLetter``."""

    partition: int
    offset: int
    reason: str


class DlqContents(NamedTuple):
    """Everything read from a dead-letter topic: the dead letters, and what did not decode."""

    topic: str
    entries: list[DlqEntry]
    unreadable: list[Unreadable]


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command works on. Every given criterion must match (exact string
    matches; ``since_ms`` against the DLQ record timestamp); ``limit`` keeps the first N selected
    in dead-letter time order."""

    stage: str | None = None
    error_type: str | None = None
    source_topic: str | None = None
    since_ms: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("stage", "error_type", "source_topic"):
            if getattr(self, name) == "":
                raise ValueError(f"--{name} must not be empty; omit it to match every {name}")
        if self.since_ms is not None and self.since_ms < 0:
            raise ValueError(f"--since_ms must be ms since the epoch (>= 0), got {self.since_ms}")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"--limit must be a positive number of records, got {self.limit}")

    @property
    def filtered(self) -> bool:
        """True when some criterion narrows the selection (``limit`` alone does not)."""
        return any(
            v is not None for v in (self.stage, self.error_type, self.source_topic, self.since_ms)
        )

    def matches(self, entry: DlqEntry) -> bool:
        d = entry.dead_letter
        return (
            (self.stage is None or d.stage == self.stage)
            and (self.error_type is None or d.error_type == self.error_type)
            and (self.source_topic is None or d.topic == self.source_topic)
            and (self.since_ms is None or entry.timestamp_ms >= self.since_ms)
        )

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in asdict(self).items() if v is not None]
        return ", ".join(parts) if parts else "no filter"


def dlq_order(entry: DlqEntry) -> tuple[int, int, int]:
    """Dead-letter time order; partition and offset break ties, so the order is total."""
    return entry.timestamp_ms, entry.partition, entry.offset


def select(entries: Iterable[DlqEntry], selection: Selection) -> list[DlqEntry]:
    """The entries ``selection`` matches, in dead-letter time order, at most ``limit`` of them."""
    chosen = sorted((e for e in entries if selection.matches(e)), key=dlq_order)
    return chosen if selection.limit is None else chosen[: selection.limit]


@dataclass(frozen=True)
class GroupSummary:
    """The dead letters of one ``(stage, error_type)``. Times are epoch ms: ``*_dead_lettered_ms``
    from the DLQ records' timestamps, ``*_record_ms`` from the original records' (None when no
    original record had one)."""

    stage: str
    error_type: str
    count: int
    first_dead_lettered_ms: int
    last_dead_lettered_ms: int
    first_record_ms: int | None
    last_record_ms: int | None
    source_topics: dict[str, int]


def summarize(entries: Iterable[DlqEntry]) -> list[GroupSummary]:
    """One summary per ``(stage, error_type)``, largest count first (then by stage, error type)."""
    groups: dict[tuple[str, str], list[DlqEntry]] = {}
    for e in entries:
        groups.setdefault((e.dead_letter.stage, e.dead_letter.error_type), []).append(e)
    summaries = []
    for (stage, error_type), members in groups.items():
        dead_lettered = [e.timestamp_ms for e in members]
        # -1 is the schema's "no timestamp": not a time, so it takes no part in first/last.
        originals = [ts for ts in (e.dead_letter.record_timestamp_ms for e in members) if ts >= 0]
        topics = Counter(e.dead_letter.topic for e in members)
        summaries.append(
            GroupSummary(
                stage=stage,
                error_type=error_type,
                count=len(members),
                first_dead_lettered_ms=min(dead_lettered),
                last_dead_lettered_ms=max(dead_lettered),
                first_record_ms=min(originals) if originals else None,
                last_record_ms=max(originals) if originals else None,
                source_topics=dict(sorted(topics.items())),
            )
        )
    return sorted(summaries, key=lambda s: (-s.count, s.stage, s.error_type))


class ReplayRecord(NamedTuple):
    """One record to produce: the original key and value bytes, where, and with which timestamp.

    ``partition`` None lets the producer's partitioner place it by key; ``timestamp_ms`` None
    lets the producer stamp the send time (the original had no timestamp).
    """

    topic: str
    partition: int | None
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: tuple[tuple[str, bytes], ...]


def plan_replay(
    entries: Iterable[DlqEntry], *, to_topic: str | None = None, partitioning: str = "original"
) -> list[ReplayRecord]:
    """What replaying ``entries`` produces, in their order: each dead letter's original key,
    value and timestamp, to its original topic (or ``to_topic``), to its original partition
    (``partitioning='original'``) or by key (``'key'``)."""
    if partitioning not in PARTITIONING:
        raise ValueError(f"partitioning must be one of {PARTITIONING}, got {partitioning!r}")
    if to_topic == "":
        raise ValueError("--to must not be empty; omit it to replay to each original topic")
    plan = []
    for e in entries:
        d = e.dead_letter
        plan.append(
            ReplayRecord(
                topic=to_topic or d.topic,
                partition=d.partition if partitioning == "original" else None,
                key=d.key,
                value=d.value,
                timestamp_ms=d.record_timestamp_ms if d.record_timestamp_ms >= 0 else None,
                headers=(
                    (ORIGIN_HEADER, f"{d.topic}/{d.partition}/{d.offset}".encode()),
                    (SOURCE_HEADER, f"{e.dlq_topic}/{e.partition}/{e.offset}".encode()),
                ),
            )
        )
    return plan


def replay_targets(plan: Iterable[ReplayRecord]) -> dict[str, int]:
    """Topic -> the highest partition the plan writes to explicitly (-1: partitioner only)."""
    targets: dict[str, int] = {}
    for r in plan:
        targets[r.topic] = max(targets.get(r.topic, -1), -1 if r.partition is None else r.partition)
    return targets
