"""``python -m tools.dlq``: the ``inspect`` and ``replay`` commands (parsing, selection, exit
codes: 0 done, 2 refused, 1 failed)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from pipelines.options import OptionError, parse_kafka_properties
from runners.cli import FullHelpParser
from tools.dlq.kafka_io import DlqError, check_targets, read_dlq, send
from tools.dlq.model import (
    DEFAULT_DLQ_TOPIC,
    PARTITIONING,
    Selection,
    plan_replay,
    replay_targets,
    select,
)
from tools.dlq.present import format_plan_line, format_summary, inspect_json
from transforms.io.record_size import VALUE_OMITTED_MARK

# Exit codes: 2 like argparse for a refused request (nothing done), 1 for a failure.
EXIT_REFUSED = 2
EXIT_FAILED = 1

# --- Command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = FullHelpParser(
        prog="python -m tools.dlq",
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
    from tools.client_security import tool_client_config

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
                f"{args.topic} matches {selection.describe()} (see `python -m tools.dlq "
                "inspect`)"
            )
        omitted = [
            e.dead_letter for e in chosen if VALUE_OMITTED_MARK in e.dead_letter.error_message
        ]
        if omitted:
            d = omitted[0]
            return refuse(
                f"{len(omitted)} selected dead letters carry no value (too large for the "
                f"dead-letter topic), e.g. {d.topic}/{d.partition}/{d.offset}: copy those "
                "records from their input topic at these coordinates, or select the others "
                "(e.g. --stage decode / --stage validate)"
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
