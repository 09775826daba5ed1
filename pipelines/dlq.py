"""The dead-letter queue tool: see what the pipeline rejected, and replay it after a fix.

``python -m pipelines.dlq inspect`` reads the dead-letter topic (``property-events-dlq`` by
default) from its first to its current last offset, decodes each ``DeadLetter`` (Avro, Confluent
wire format, schema id from the local catalog) and prints a summary per ``(stage, error_type)``:
count, first and last time the records were dead-lettered (the DLQ records' own Kafka timestamps),
first and last original record timestamp, and the source topics. ``--records`` lists the records,
``--json`` prints the same as one JSON document.

``python -m pipelines.dlq replay --stage S --error_type E`` re-produces the original key and value
bytes of the selected dead letters to the topic they came from (or ``--to``), with the original
record timestamp, to the original partition (or by key with ``--partitioning key``), through an
idempotent producer. Each replayed record carries two headers saying where it came from
(``dlq.origin``: topic/partition/offset of the original record; ``dlq.source``: the dead letter's
own coordinates), so downstream can tell a replay from a first delivery. ``--dry_run`` prints what
would be replayed and sends nothing. Replay refuses when nothing is selected, and refuses to
replay the whole topic without a filter unless ``--all`` is given.

Selection (both commands): ``--stage``, ``--error_type``, ``--source_topic`` (exact matches),
``--since_ms`` (dead-lettered at or after, epoch ms) and ``--limit N`` (the first N selected, in
dead-letter time order), so ``inspect`` with a replay's flags shows exactly what it would replay.

Delivery: replaying the same selection twice produces the records twice (the producer is
idempotent per session, not across runs); the ``dlq.source`` header identifies duplicates. A
replayed record keeps its old timestamp and lands at the end of its partition's log, so the
pipeline's late gate ("late in the log", see the contract) routes it to the late topic when newer
records of that partition already closed its window; replay what is still within the lateness, or
replay into a backfill topic (``--to``).

The plain functions (``select``, ``summarize``, ``plan_replay``) hold the rules and need no broker;
``read_dlq`` and ``send`` are the Kafka I/O around them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO

from pipelines.delivery import DeliveryReport
from pipelines.options import OptionError, PropertyTopics, parse_kafka_properties
from runners.cli import FullHelpParser
from transforms.codec import DecodeError, decode_record
from transforms.dead_letter import DeadLetter

DEFAULT_DLQ_TOPIC = PropertyTopics().dlq
SCHEMA = "DeadLetter"
ORIGIN_HEADER = "dlq.origin"
SOURCE_HEADER = "dlq.source"
PARTITIONING = ("original", "key")

# Exit codes: 2 like argparse for a refused request (nothing done), 1 for a failure.
EXIT_REFUSED = 2
EXIT_FAILED = 1


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


# --- Kafka I/O ----------------------------------------------------------------------------------


class DlqError(RuntimeError):
    """The dead-letter topic or a replay target cannot be used (missing topic, partition, ...)."""


def _remaining(deadline: float) -> float:
    return max(1.0, deadline - time.monotonic())


def read_dlq(
    bootstrap_servers: str,
    topic: str = DEFAULT_DLQ_TOPIC,
    *,
    timeout_s: float = 60.0,
    consumer_config: Mapping[str, str] | None = None,
) -> DlqContents:
    """Every record now in ``topic`` (each partition from its first to its high watermark at the
    start of the read), decoded as ``DeadLetter``. Records that do not decode are returned as
    ``Unreadable``, not raised: the tool must show a damaged DLQ, not die on it.

    Raises ``DlqError`` when the topic does not exist, ``TimeoutError`` when it cannot be read to
    its end within ``timeout_s``.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            # A throw-away group: nothing is committed, and no real group's offsets move.
            "group.id": f"dlq-tool-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "allow.auto.create.topics": False,  # reading a mistyped --topic must not create it
            **(consumer_config or {}),
        }
    )
    deadline = time.monotonic() + timeout_s
    entries: list[DlqEntry] = []
    unreadable: list[Unreadable] = []
    try:
        metadata = consumer.list_topics(topic, timeout=_remaining(deadline))
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise DlqError(
                f"dead-letter topic {topic!r} does not exist at {bootstrap_servers} "
                f"({found.error if found is not None else 'not in the metadata'}); give --topic"
            )
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for p in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=_remaining(deadline)
            )
            if high > low:
                starts[p], ends[p] = low, high
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in starts])
        position = dict(starts)
        while any(position[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading {topic}: at offsets {position} of {ends} after {timeout_s}s"
                )
            batch = consumer.consume(500, timeout=0.5)
            if not batch:
                # A transactional writer leaves a commit marker at the end of the log: it takes
                # an offset but is never delivered, so only the consumer's position shows that
                # the end was reached.
                for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                    position[tp.partition] = max(position[tp.partition], tp.offset)
            for msg in batch:
                if msg.error():
                    raise DlqError(f"reading {topic}: {msg.error()}")
                p, offset = msg.partition(), msg.offset()
                position[p] = offset + 1
                if offset >= ends[p]:
                    continue  # appended after the read began: not part of this snapshot
                try:
                    _schema_id, record = decode_record(msg.value(), SCHEMA)
                except DecodeError as exc:
                    unreadable.append(Unreadable(p, offset, f"{type(exc).__name__}: {exc}"))
                    continue
                _ts_type, ts = msg.timestamp()
                entries.append(DlqEntry(DeadLetter.from_avro(record), topic, p, offset, ts))
        consumer.unassign()
    finally:
        consumer.close()
    return DlqContents(topic, entries, unreadable)


def check_targets(
    plan: Sequence[ReplayRecord],
    bootstrap_servers: str,
    *,
    timeout_s: float = 30.0,
    client_config: Mapping[str, str] | None = None,
) -> None:
    """Raises ``DlqError`` when a target topic is missing or lacks a partition the plan writes
    to: a replay must not auto-create topics or fail half-way."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            "allow.auto.create.topics": False,  # the metadata look-up must not create the topic
            **(client_config or {}),
        }
    )
    for topic, highest in sorted(replay_targets(plan).items()):
        found = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise DlqError(
                f"target topic {topic!r} does not exist; create it first (replay creates none)"
            )
        if highest >= len(found.partitions):
            raise DlqError(
                f"target topic {topic!r} has {len(found.partitions)} partitions, the replay "
                f"needs partition {highest}; use --partitioning key to place records by key"
            )


def send(
    plan: Sequence[ReplayRecord],
    bootstrap_servers: str,
    *,
    producer_config: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
    progress: bool = True,
) -> int:
    """Produces ``plan`` in order through an idempotent producer (so retries neither duplicate
    nor reorder within a partition); returns the number of records the broker acknowledged.
    Raises ``DlqError`` when any record is not delivered within ``timeout_s``."""
    from confluent_kafka import Producer
    from tqdm import tqdm

    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            **(producer_config or {}),
        }
    )
    report = DeliveryReport()

    deadline = time.monotonic() + timeout_s
    bar = tqdm(total=len(plan), unit="rec", desc="replay", disable=not progress, file=sys.stderr)
    for r in plan:
        kwargs: dict[str, Any] = {}
        if r.partition is not None:
            kwargs["partition"] = r.partition
        if r.timestamp_ms is not None:
            kwargs["timestamp"] = r.timestamp_ms
        while True:
            try:
                producer.produce(
                    r.topic,
                    value=r.value,
                    key=r.key,
                    headers=list(r.headers),
                    on_delivery=report,
                    **kwargs,
                )
                break
            except BufferError:
                # The local queue is full: wait for deliveries, but not forever.
                if time.monotonic() > deadline:
                    raise DlqError(
                        f"replay: producer queue still full after {timeout_s}s"
                    ) from None
                producer.poll(0.05)
        producer.poll(0)
        bar.update(1)
    remaining = producer.flush(_remaining(deadline))
    bar.close()
    if remaining or report.errors:
        raise DlqError(
            f"replay: {report.delivered} of {len(plan)} delivered; {remaining} not delivered "
            "within "
            f"{timeout_s}s, {len(report.errors)} delivery errors (first: {report.errors[:1]})"
        )
    return report.delivered


# --- Presentation -------------------------------------------------------------------------------


def iso_ms(ts_ms: int | None) -> str:
    """Epoch ms as ISO-8601 UTC with milliseconds; '-' for none."""
    if ts_ms is None or ts_ms < 0:
        return "-"
    stamp = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def show_bytes(data: bytes | None) -> str:
    """Key bytes for people: the UTF-8 text when it is text, else escaped; 'null' for None."""
    if data is None:
        return "null"
    return data.decode("utf-8", errors="backslashreplace")


def entry_json(entry: DlqEntry) -> dict[str, Any]:
    d = entry.dead_letter
    return {
        "dlq_partition": entry.partition,
        "dlq_offset": entry.offset,
        "dead_lettered_ms": entry.timestamp_ms,
        "stage": d.stage,
        "error_type": d.error_type,
        "error_message": d.error_message,
        "key": None if d.key is None else show_bytes(d.key),
        "key_hex": None if d.key is None else d.key.hex(),
        "value_bytes": None if d.value is None else len(d.value),
        "topic": d.topic,
        "partition": d.partition,
        "offset": d.offset,
        "record_timestamp_ms": d.record_timestamp_ms,
        "pipeline_version": d.pipeline_version,
    }


def inspect_json(
    contents: DlqContents, selection: Selection, chosen: Sequence[DlqEntry], with_records: bool
) -> dict[str, Any]:
    """The machine form of ``inspect``: counts, groups, and (``with_records``) the records."""
    doc: dict[str, Any] = {
        "topic": contents.topic,
        "total": len(contents.entries),
        "selection": {k: v for k, v in asdict(selection).items() if v is not None},
        "selected": len(chosen),
        "groups": [asdict(s) for s in summarize(chosen)],
        "unreadable": [u._asdict() for u in contents.unreadable],
    }
    if with_records:
        doc["records"] = [entry_json(e) for e in chosen]
    return doc


def format_summary(
    contents: DlqContents, selection: Selection, chosen: Sequence[DlqEntry], with_records: bool
) -> str:
    """The human form of ``inspect``: a table per (stage, error_type), then optionally records."""
    lines = [
        f"{contents.topic}: {len(contents.entries)} dead letters, {len(chosen)} selected "
        f"({selection.describe()}), {len(contents.unreadable)} unreadable"
    ]
    groups = summarize(chosen)
    if groups:
        rows = [
            (
                "stage",
                "error_type",
                "count",
                "first dead-lettered",
                "last dead-lettered",
                "first record ts",
                "last record ts",
                "source topics",
            )
        ]
        for s in groups:
            rows.append(
                (
                    s.stage,
                    s.error_type,
                    str(s.count),
                    iso_ms(s.first_dead_lettered_ms),
                    iso_ms(s.last_dead_lettered_ms),
                    iso_ms(s.first_record_ms),
                    iso_ms(s.last_record_ms),
                    ", ".join(f"{t}={n}" for t, n in s.source_topics.items()),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            # Counts right-aligned, text left-aligned.
            cells = [
                c.rjust(w) if i == 2 else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
    if with_records:
        lines.append("")
        for e in chosen:
            d = e.dead_letter
            lines.append(
                f"[{e.partition}:{e.offset}] {iso_ms(e.timestamp_ms)} {d.stage}/{d.error_type} "
                f"key={show_bytes(d.key)!r} from {d.topic}/{d.partition}/{d.offset} "
                f"ts={iso_ms(d.record_timestamp_ms)}: {d.error_message}"
            )
    for u in contents.unreadable:
        lines.append(f"unreadable [{u.partition}:{u.offset}]: {u.reason}")
    return "\n".join(lines)


def format_plan_line(record: ReplayRecord, entry: DlqEntry) -> str:
    partition = "by key" if record.partition is None else str(record.partition)
    size = "null" if record.value is None else f"{len(record.value)} B"
    return (
        f"{entry.dead_letter.stage}/{entry.dead_letter.error_type} "
        f"key={show_bytes(record.key)!r} value={size} -> {record.topic} partition {partition} "
        f"ts={iso_ms(record.timestamp_ms)} (from DLQ {entry.partition}:{entry.offset})"
    )


# --- Command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = FullHelpParser(
        prog="python -m pipelines.dlq",
        description="Inspect the dead-letter topic, and replay selected dead letters.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--bootstrap_servers",
        help="Kafka bootstrap servers (default: the local stack's broker).",
    )
    common.add_argument(
        "--kafka_property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra Kafka client property (security.protocol=SASL_SSL, ...), repeatable.",
    )
    common.add_argument("--topic", default=DEFAULT_DLQ_TOPIC, help="The dead-letter topic to read.")
    common.add_argument("--stage", help="Only dead letters of this stage (decode, validate, ...).")
    common.add_argument("--error_type", help="Only dead letters with this error type.")
    common.add_argument("--source_topic", help="Only dead letters whose original topic is this.")
    common.add_argument(
        "--since_ms", type=int, help="Only dead letters written at or after this epoch ms."
    )
    common.add_argument(
        "--limit", type=int, help="At most this many (the oldest selected dead letters)."
    )
    common.add_argument(
        "--timeout_s",
        type=float,
        default=60.0,
        help="Give up reading (and, for replay, producing) after this many seconds.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser(
        "inspect", parents=[common], help="Summarise the dead letters by stage and error type."
    )
    inspect.add_argument("--records", action="store_true", help="List the selected records too.")
    inspect.add_argument("--json", action="store_true", help="One JSON document on stdout.")
    replay = commands.add_parser(
        "replay", parents=[common], help="Re-produce the original records of selected letters."
    )
    replay.add_argument("--to", help="Replay to this topic instead of each original topic.")
    replay.add_argument(
        "--partitioning",
        choices=PARTITIONING,
        default="original",
        help="original: each record to the partition it came from; key: the producer's "
        "partitioner places it by key (librdkafka's CRC32, as the simulator does).",
    )
    replay.add_argument(
        "--all", action="store_true", help="Allow replaying every dead letter (no filter)."
    )
    replay.add_argument("--dry_run", action="store_true", help="Print what would be replayed.")
    replay.add_argument("--no_progress", action="store_true", help="No progress bar on stderr.")
    return parser


def _bootstrap(given: str | None) -> str:
    if given:
        return given
    from runners.local import Stack

    return Stack.load().bootstrap_servers


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Runs one command; returns the exit code (0 done, 2 refused, 1 failed)."""
    from confluent_kafka import KafkaException

    out = out or sys.stdout
    args = _parser().parse_args(argv)

    def refuse(message: str) -> int:
        print(f"dlq {args.command}: {message}", file=sys.stderr)
        return EXIT_REFUSED

    try:
        selection = Selection(
            stage=args.stage,
            error_type=args.error_type,
            source_topic=args.source_topic,
            since_ms=args.since_ms,
            limit=args.limit,
        )
        properties = parse_kafka_properties(args.kafka_property)
        if args.timeout_s <= 0:
            raise ValueError(f"--timeout_s must be > 0 seconds, got {args.timeout_s}")
    except (ValueError, OptionError) as exc:
        return refuse(str(exc))
    if args.command == "replay":
        if not selection.filtered and not args.all:
            return refuse(
                "refusing to replay every dead letter without a filter: give --stage, "
                "--error_type, --source_topic or --since_ms, or --all to mean it"
            )
        if args.to == args.topic:
            return refuse(f"--to {args.to} is the dead-letter topic itself; give an input topic")
    try:
        bootstrap = _bootstrap(args.bootstrap_servers)
    except RuntimeError as exc:  # runners.local's StackError: no local stack running
        return refuse(f"{exc}; or give --bootstrap_servers")
    from pipelines.client_security import tool_client_config

    try:
        # $KAFKA_CONFIG_FILE, or the secured local stack's users: read as tools, write as producer.
        reader = {**tool_client_config("tools", args.bootstrap_servers), **properties}
        writer = {**tool_client_config("producer", args.bootstrap_servers), **properties}
        if reader != properties:
            # Secured: fail in seconds with one line (librdkafka retries a refused login).
            from pipelines.kafka_access import check_access

            check_access(
                bootstrap,
                reader,
                read_topics=[args.topic],
                write_topics=[],
                user="the DLQ tool's Kafka user",
                timeout_s=args.timeout_s,
            )
    except ValueError as exc:  # ClientConfigError: the file cannot be used
        return refuse(str(exc))
    except RuntimeError as exc:  # KafkaAccessError: authentication or ACLs
        print(f"dlq {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        contents = read_dlq(bootstrap, args.topic, timeout_s=args.timeout_s, consumer_config=reader)
        chosen = select(contents.entries, selection)
        if args.command == "inspect":
            if args.json:
                doc = inspect_json(contents, selection, chosen, args.records)
                print(json.dumps(doc, indent=2), file=out)
            else:
                print(format_summary(contents, selection, chosen, args.records), file=out)
            return 0
        if not chosen:
            return refuse(
                f"nothing selected: none of the {len(contents.entries)} dead letters in "
                f"{args.topic} matches {selection.describe()} (see `python -m pipelines.dlq "
                "inspect`)"
            )
        plan = plan_replay(chosen, to_topic=args.to, partitioning=args.partitioning)
        if args.topic in replay_targets(plan):
            return refuse(
                f"the selection would replay into the dead-letter topic {args.topic} itself"
            )
        if args.dry_run:
            for record, entry in zip(plan, chosen, strict=True):
                print(format_plan_line(record, entry), file=out)
            print(f"dry run: would replay {len(plan)} records ({selection.describe()})", file=out)
            return 0
        check_targets(plan, bootstrap, timeout_s=args.timeout_s, client_config=writer)
        delivered = send(
            plan,
            bootstrap,
            producer_config=writer,
            timeout_s=args.timeout_s,
            progress=not args.no_progress,
        )
        targets = ", ".join(sorted(replay_targets(plan)))
        print(f"replayed {delivered} of {len(plan)} records to {targets}", file=out)
        return 0
    except (DlqError, TimeoutError, KafkaException) as exc:
        # KafkaException: the broker is unreachable or refused us (auth, ACLs).
        print(f"dlq {args.command} (Kafka at {bootstrap}): {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
