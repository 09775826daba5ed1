"""The DLQ tool's rules without a broker: selection, summary, replay plan, refusals."""

from __future__ import annotations

import io
import json

import pytest

from tools import dlq
from tools.dlq import (
    ORIGIN_HEADER,
    SOURCE_HEADER,
    DlqContents,
    DlqEntry,
    GroupSummary,
    ReplayRecord,
    Selection,
    Unreadable,
    plan_replay,
    replay_targets,
    select,
    summarize,
)
from transforms.codec import decode_record, encode_record
from transforms.dead_letter import DeadLetter

DLQ = "property-events-dlq"


def entry(
    stage: str = "validate",
    error_type: str = "zip_code_format",
    *,
    key: bytes | None = b"P1",
    value: bytes | None = b"\x00\x00\x00\x00\x01body",
    topic: str = "property-events",
    partition: int = 0,
    offset: int = 0,
    record_ts: int = 1_000,
    dlq_partition: int = 0,
    dlq_offset: int = 0,
    dead_lettered: int = 10_000,
) -> DlqEntry:
    letter = DeadLetter(
        stage=stage,
        error_type=error_type,
        error_message=f"{error_type} failed",
        key=key,
        value=value,
        topic=topic,
        partition=partition,
        offset=offset,
        record_timestamp_ms=record_ts,
    )
    return DlqEntry(letter, DLQ, dlq_partition, dlq_offset, dead_lettered)


ENTRIES = [
    entry("decode", "BadMagicByteError", key=b"P1", dlq_offset=0, dead_lettered=300, record_ts=50),
    entry("validate", "zip_code_format", key=b"P2", dlq_offset=1, dead_lettered=100, record_ts=70),
    entry(
        "validate",
        "zip_code_format",
        key=b"P3",
        topic="property-views",
        dlq_partition=1,
        dlq_offset=0,
        dead_lettered=200,
        record_ts=-1,
    ),
    entry("validate", "price_range", key=b"P4", dlq_offset=2, dead_lettered=400, record_ts=90),
    entry("validate", "zip_code_format", key=b"P5", dlq_offset=3, dead_lettered=500, record_ts=30),
]


def keys(entries: list[DlqEntry]) -> list[bytes | None]:
    return [e.dead_letter.key for e in entries]


# --- DeadLetter round trip ----------------------------------------------------------------------


def test_dead_letter_survives_the_avro_round_trip_through_the_dlq_schema():
    letter = entry(key=None, value=None, record_ts=-1).dead_letter
    _schema_id, record = decode_record(encode_record(letter.to_avro(), "DeadLetter"), "DeadLetter")
    assert DeadLetter.from_avro(record) == letter


# --- select -------------------------------------------------------------------------------------


def test_select_without_criteria_returns_everything_in_dead_letter_time_order():
    assert keys(select(ENTRIES, Selection())) == [b"P2", b"P3", b"P1", b"P4", b"P5"]


def test_select_matches_every_given_criterion_exactly():
    chosen = select(ENTRIES, Selection(stage="validate", error_type="zip_code_format"))
    assert keys(chosen) == [b"P2", b"P3", b"P5"]
    chosen = select(ENTRIES, Selection(error_type="zip_code_format", source_topic="property-views"))
    assert keys(chosen) == [b"P3"]
    assert select(ENTRIES, Selection(stage="validate", error_type="BadMagicByteError")) == []
    assert select(ENTRIES, Selection(stage="Validate")) == []  # case matters: exact match


def test_since_ms_compares_the_dead_letter_time_inclusively_not_the_original_timestamp():
    assert keys(select(ENTRIES, Selection(since_ms=300))) == [b"P1", b"P4", b"P5"]


def test_limit_keeps_the_oldest_selected_dead_letters():
    chosen = select(ENTRIES, Selection(error_type="zip_code_format", limit=2))
    assert keys(chosen) == [b"P2", b"P3"]


def test_equal_dead_letter_times_are_ordered_by_partition_then_offset():
    tied = [
        entry(key=b"c", dlq_partition=1, dlq_offset=0, dead_lettered=5),
        entry(key=b"b", dlq_partition=0, dlq_offset=7, dead_lettered=5),
        entry(key=b"a", dlq_partition=0, dlq_offset=3, dead_lettered=5),
    ]
    assert keys(select(tied, Selection())) == [b"a", b"b", b"c"]


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"stage": ""}, "--stage"),
        ({"error_type": ""}, "--error_type"),
        ({"source_topic": ""}, "--source_topic"),
        ({"since_ms": -1}, "--since_ms"),
        ({"limit": 0}, "--limit"),
    ],
)
def test_bad_selection_is_refused_naming_the_flag(kwargs, flag):
    with pytest.raises(ValueError, match=flag):
        Selection(**kwargs)


def test_limit_alone_is_not_a_filter():
    assert not Selection(limit=5).filtered
    assert Selection(since_ms=0).filtered
    assert Selection(source_topic="property-views").filtered


# --- summarize ----------------------------------------------------------------------------------


def test_summary_counts_per_stage_and_error_type_largest_first_with_times_and_topics():
    assert summarize(ENTRIES) == [
        GroupSummary(
            stage="validate",
            error_type="zip_code_format",
            count=3,
            first_dead_lettered_ms=100,
            last_dead_lettered_ms=500,
            # P3's original had no timestamp (-1): it takes no part in first/last.
            first_record_ms=30,
            last_record_ms=70,
            source_topics={"property-events": 2, "property-views": 1},
        ),
        GroupSummary("decode", "BadMagicByteError", 1, 300, 300, 50, 50, {"property-events": 1}),
        GroupSummary("validate", "price_range", 1, 400, 400, 90, 90, {"property-events": 1}),
    ]


def test_summary_of_originals_without_timestamps_has_no_record_times():
    (group,) = summarize([entry(record_ts=-1)])
    assert (group.first_record_ms, group.last_record_ms) == (None, None)


def test_summary_of_nothing_is_empty():
    assert summarize([]) == []


# --- plan_replay --------------------------------------------------------------------------------


def test_replay_plan_carries_the_original_key_value_timestamp_topic_and_partition():
    e = entry(key=b"P9", value=b"raw bytes", partition=3, offset=77, record_ts=1234, dlq_offset=5)
    assert plan_replay([e]) == [
        ReplayRecord(
            topic="property-events",
            partition=3,
            key=b"P9",
            value=b"raw bytes",
            timestamp_ms=1234,
            headers=(
                (ORIGIN_HEADER, b"property-events/3/77"),
                (SOURCE_HEADER, f"{DLQ}/0/5".encode()),
            ),
        )
    ]


def test_replay_plan_redirects_to_another_topic_and_can_leave_placement_to_the_key():
    (record,) = plan_replay([entry(partition=3)], to_topic="backfill", partitioning="key")
    assert (record.topic, record.partition) == ("backfill", None)


def test_replay_plan_leaves_a_missing_original_timestamp_to_the_producer():
    (record,) = plan_replay([entry(record_ts=-1)])
    assert record.timestamp_ms is None


def test_replay_plan_keeps_null_keys_and_values_as_they_were():
    (record,) = plan_replay([entry(key=None, value=None)])
    assert (record.key, record.value) == (None, None)


def test_replay_plan_rejects_unknown_partitioning_and_empty_target():
    with pytest.raises(ValueError, match="partitioning"):
        plan_replay([entry()], partitioning="random")
    with pytest.raises(ValueError, match="--to"):
        plan_replay([entry()], to_topic="")


def test_replay_targets_name_the_highest_explicit_partition_per_topic():
    plan = plan_replay(
        [
            entry(partition=1),
            entry(partition=3),
            entry(topic="property-views", partition=0),
        ]
    )
    assert replay_targets(plan) == {"property-events": 3, "property-views": 0}
    assert replay_targets(plan_replay([entry()], partitioning="key")) == {"property-events": -1}


# --- presentation -------------------------------------------------------------------------------


def test_inspect_json_holds_counts_groups_records_and_unreadable():
    contents = DlqContents(DLQ, ENTRIES, [Unreadable(1, 9, "BadMagicByteError: x")])
    selection = Selection(stage="validate")
    doc = dlq.inspect_json(contents, selection, select(ENTRIES, selection), with_records=True)
    doc = json.loads(json.dumps(doc))  # serialisable as is
    assert (doc["total"], doc["selected"]) == (5, 4)
    assert doc["selection"] == {"stage": "validate"}
    assert [(g["error_type"], g["count"]) for g in doc["groups"]] == [
        ("zip_code_format", 3),
        ("price_range", 1),
    ]
    assert [r["key"] for r in doc["records"]] == ["P2", "P3", "P4", "P5"]
    assert doc["unreadable"] == [{"partition": 1, "offset": 9, "reason": "BadMagicByteError: x"}]


def test_text_summary_shows_each_group_and_the_records_when_asked():
    contents = DlqContents(DLQ, ENTRIES, [])
    text = dlq.format_summary(contents, Selection(), select(ENTRIES, Selection()), True)
    assert text.splitlines()[0] == f"{DLQ}: 5 dead letters, 5 selected (no filter), 0 unreadable"
    assert "zip_code_format" in text and "property-events=2, property-views=1" in text
    assert "key='P3' from property-views/0/0" in text


def test_binary_keys_are_shown_escaped_not_crashing():
    assert dlq.show_bytes(b"\xff\x00a") == "\\xff\x00a"
    assert dlq.show_bytes(None) == "null"
    assert dlq.iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert dlq.iso_ms(-1) == "-"


# --- command line refusals that need no broker ---------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    # An address nothing listens on: these refusals must happen before any connection.
    code = dlq.main([*argv, "--bootstrap_servers=127.0.0.1:1", "--timeout_s=2"], out=out)
    return code, out.getvalue()


def test_replay_without_any_filter_is_refused_unless_all_is_given(capsys):
    code, out = run_cli("replay")
    assert code == dlq.EXIT_REFUSED and out == ""
    assert "--all" in capsys.readouterr().err


def test_replay_into_the_dead_letter_topic_itself_is_refused(capsys):
    code, _ = run_cli("replay", "--stage=decode", f"--to={DLQ}")
    assert code == dlq.EXIT_REFUSED
    assert "dead-letter topic itself" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        ("--limit=0", "--limit"),
        ("--since_ms=-5", "--since_ms"),
        ("--kafka_property=nonsense", "KEY=VALUE"),
        ("--kafka_property=bootstrap.servers=x:1", "--bootstrap_servers"),
    ],
)
def test_bad_flags_are_refused_before_connecting(flag, says, capsys):
    code, _ = run_cli("inspect", flag)
    assert code == dlq.EXIT_REFUSED
    assert says in capsys.readouterr().err
