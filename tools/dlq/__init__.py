"""The dead-letter queue tool: see what the pipeline rejected, and replay it after a fix.

``python -m tools.dlq inspect`` reads the dead-letter topic (``property-events-dlq`` by
default) from its first to its current last offset, decodes each ``DeadLetter`` (Avro, Confluent
wire format, schema id from the local catalog) and prints a summary per ``(stage, error_type)``:
count, first and last time the records were dead-lettered (the DLQ records' own Kafka timestamps),
first and last original record timestamp, and the source topics. ``--records`` lists the records,
``--json`` prints the same as one JSON document.

``python -m tools.dlq replay --stage S --error_type E`` re-produces the original key and value
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

The package: ``model`` (the rules), ``kafka_io``, ``present`` (text and JSON) and ``cli``.
"""

from __future__ import annotations

from tools.dlq.cli import EXIT_FAILED, EXIT_REFUSED, main
from tools.dlq.kafka_io import DlqError, check_targets, read_dlq, send
from tools.dlq.model import (
    DEFAULT_DLQ_TOPIC,
    ORIGIN_HEADER,
    PARTITIONING,
    SCHEMA,
    SOURCE_HEADER,
    DlqContents,
    DlqEntry,
    GroupSummary,
    ReplayRecord,
    Selection,
    Unreadable,
    dlq_order,
    plan_replay,
    replay_targets,
    select,
    summarize,
)
from tools.dlq.present import (
    entry_json,
    format_plan_line,
    format_summary,
    inspect_json,
    iso_ms,
    show_bytes,
)

__all__ = [
    "DEFAULT_DLQ_TOPIC",
    "EXIT_FAILED",
    "EXIT_REFUSED",
    "ORIGIN_HEADER",
    "PARTITIONING",
    "SCHEMA",
    "SOURCE_HEADER",
    "DlqContents",
    "DlqEntry",
    "DlqError",
    "GroupSummary",
    "ReplayRecord",
    "Selection",
    "Unreadable",
    "check_targets",
    "dlq_order",
    "entry_json",
    "format_plan_line",
    "format_summary",
    "inspect_json",
    "iso_ms",
    "main",
    "plan_replay",
    "read_dlq",
    "replay_targets",
    "select",
    "send",
    "show_bytes",
    "summarize",
]
