"""The DLQ tool's output: times as ISO-8601, bytes shown safely, the summary table, one line per
replayed record, and the same as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from tools.dlq.model import DlqContents, DlqEntry, ReplayRecord, Selection, summarize

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
