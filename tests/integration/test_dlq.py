"""The DLQ tool against the real broker: dead letters written as the pipeline writes them (Avro
``DeadLetter`` in the wire format, keyed by the original key) are summarised exactly, and a
filtered replay puts exactly the original key, value and timestamp of that subset back.

Each test writes its own dead-letter topic and source topics (``make_topic``), so the dead
letters name topics that exist only for that test.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import Any, NamedTuple

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tools import dlq
from transforms.codec import encode_record
from transforms.dead_letter import DeadLetter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

READ_TIMEOUT_S = 60.0
HOUR_MS = 3_600_000


class Got(NamedTuple):
    """A record read back from a topic."""

    partition: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: dict[str, bytes]


def read_topic(bootstrap: str, topic: str, timeout_s: float = READ_TIMEOUT_S) -> list[Got]:
    """Every record now in ``topic``, to each partition's high watermark, within ``timeout_s``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-dlq-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    deadline = time.monotonic() + timeout_s
    got: list[Got] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        position = dict.fromkeys(ends, 0)
        while any(position[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"{topic}: {position} of {ends} in {timeout_s}s"
            for msg in consumer.consume(100, timeout=0.5):
                assert msg.error() is None, msg.error()
                position[msg.partition()] = msg.offset() + 1
                got.append(
                    Got(
                        msg.partition(),
                        msg.key(),
                        msg.value(),
                        msg.timestamp()[1],
                        dict(msg.headers() or []),
                    )
                )
    finally:
        consumer.close()
    return got


class Seeded(NamedTuple):
    bootstrap: str
    dlq_topic: str
    events: str
    views: str
    backfill: str
    letters: list[DeadLetter]  # in the order written; letter i was dead-lettered at base + i s
    dead_lettered_base_ms: int


@pytest.fixture
def seeded(kafka_bootstrap: str, make_topic: Any) -> Seeded:
    """A DLQ of 13 dead letters over two source topics, plus one record that is not a DeadLetter.

    events: 5 validate/zip_code_format, 3 decode/BadMagicByteError, 1 validate/price_range;
    views: 2 validate/zip_code_format (same error, other topic), 1 decode/MissingValueError
    (null value), 1 validate/non_empty_id (null key).
    """
    events = make_topic(4, "events")
    views = make_topic(4, "views")
    dlq_topic = make_topic(2, "dlq")
    backfill = make_topic(3, "backfill")
    now_ms = int(time.time() * 1000)
    original_ms = now_ms - 2 * HOUR_MS

    def letter(stage, error_type, topic, n, *, key=b"", value=b"") -> DeadLetter:
        return DeadLetter(
            stage=stage,
            error_type=error_type,
            error_message=f"{error_type} in record {n}",
            key=(key if key != b"" else f"K{n:03d}".encode()),
            value=(value if value != b"" else b"\x00\x00\x00\x00\x01" + f"body-{n}".encode()),
            topic=topic,
            partition=n % 4,
            offset=1000 + n,
            record_timestamp_ms=original_ms + n * 7_919,  # distinct, unordered vs offsets
        )

    letters = (
        [letter("validate", "zip_code_format", events, n) for n in range(5)]
        + [letter("decode", "BadMagicByteError", events, n, value=b"\x07junk") for n in (5, 6, 7)]
        + [letter("validate", "price_range", events, 8)]
        + [letter("validate", "zip_code_format", views, n) for n in (9, 10)]
        + [letter("decode", "MissingValueError", views, 11, value=None)]
        + [letter("validate", "non_empty_id", views, 12, key=None)]
    )
    base_ms = now_ms - HOUR_MS
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for i, d in enumerate(letters):
        producer.produce(
            dlq_topic,
            key=d.key,
            value=encode_record(d.to_avro(), "DeadLetter"),
            partition=i % 2,
            timestamp=base_ms + i * 1000,
        )
    # Not a DeadLetter: the tool must report it, not die on it.
    producer.produce(dlq_topic, key=b"junk", value=b"not avro", partition=1, timestamp=base_ms)
    assert producer.flush(30) == 0
    return Seeded(kafka_bootstrap, dlq_topic, events, views, backfill, letters, base_ms)


def cli(seeded: Seeded, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = dlq.main(
        [
            *argv,
            f"--bootstrap_servers={seeded.bootstrap}",
            f"--topic={seeded.dlq_topic}",
            "--timeout_s=60",
        ],
        out=out,
    )
    return code, out.getvalue()


def originals(letters: list[DeadLetter]) -> set[tuple[bytes | None, bytes | None, int]]:
    return {(d.key, d.value, d.record_timestamp_ms) for d in letters}


def test_inspect_counts_every_dead_letter_by_stage_and_error_type(seeded: Seeded):
    code, out = cli(seeded, "inspect", "--json", "--records")
    assert code == 0
    doc = json.loads(out)
    assert (doc["total"], doc["selected"]) == (13, 13)
    groups = {(g["stage"], g["error_type"]): g for g in doc["groups"]}
    assert {k: g["count"] for k, g in groups.items()} == {
        ("validate", "zip_code_format"): 7,
        ("decode", "BadMagicByteError"): 3,
        ("validate", "price_range"): 1,
        ("decode", "MissingValueError"): 1,
        ("validate", "non_empty_id"): 1,
    }
    zips = groups[("validate", "zip_code_format")]
    assert zips["source_topics"] == {seeded.events: 5, seeded.views: 2}
    zip_letters = [d for d in seeded.letters if d.error_type == "zip_code_format"]
    zip_times = [d.record_timestamp_ms for d in zip_letters]
    assert (zips["first_record_ms"], zips["last_record_ms"]) == (min(zip_times), max(zip_times))
    # Letters 0-4 and 9-10, dead-lettered one second apart from the base.
    base = seeded.dead_lettered_base_ms
    assert (zips["first_dead_lettered_ms"], zips["last_dead_lettered_ms"]) == (base, base + 10_000)
    assert len(doc["records"]) == 13
    null_key = [r for r in doc["records"] if r["error_type"] == "non_empty_id"]
    assert null_key[0]["key"] is None and null_key[0]["topic"] == seeded.views
    (unreadable,) = doc["unreadable"]
    assert unreadable["partition"] == 1 and "BadMagicByteError" in unreadable["reason"]


def test_inspect_with_since_and_limit_selects_the_oldest_matching_after_the_time(seeded: Seeded):
    since = seeded.dead_lettered_base_ms + 3_000  # letters 3.. were dead-lettered at or after
    code, out = cli(
        seeded, "inspect", "--json", "--records", "--stage=validate", f"--since_ms={since}",
        "--limit=3",
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert doc["selected"] == 3
    assert [r["key"] for r in doc["records"]] == ["K003", "K004", "K008"]


def test_text_inspect_prints_one_line_per_group(seeded: Seeded):
    code, out = cli(seeded, "inspect", "--source_topic", seeded.views)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{seeded.dlq_topic}: 13 dead letters, 4 selected")
    assert len([ln for ln in lines if ln.startswith(("validate ", "decode "))]) == 3


def test_replay_of_a_filtered_subset_restores_exactly_its_original_records(seeded: Seeded):
    code, out = cli(
        seeded, "replay", "--stage=validate", "--error_type=zip_code_format",
        f"--source_topic={seeded.events}", "--no_progress",
    )  # fmt: skip
    assert code == 0, out
    assert out.strip() == f"replayed 5 of 5 records to {seeded.events}"
    chosen = [
        d for d in seeded.letters if d.error_type == "zip_code_format" and d.topic == seeded.events
    ]
    got = read_topic(seeded.bootstrap, seeded.events)
    assert len(got) == 5
    assert {(g.key, g.value, g.timestamp_ms) for g in got} == originals(chosen)
    # Each went back to the partition it came from, and says where it came from.
    by_key = {d.key: d for d in chosen}
    for g in got:
        d = by_key[g.key]
        assert g.partition == d.partition
        assert g.headers[dlq.ORIGIN_HEADER] == f"{d.topic}/{d.partition}/{d.offset}".encode()
        assert g.headers[dlq.SOURCE_HEADER].startswith(f"{seeded.dlq_topic}/".encode())
    # Nothing else moved: the other source topic got nothing.
    assert read_topic(seeded.bootstrap, seeded.views) == []


def test_replay_to_another_topic_by_key_keeps_key_value_and_timestamp(seeded: Seeded):
    code, out = cli(
        seeded, "replay", "--error_type=zip_code_format", f"--source_topic={seeded.views}",
        f"--to={seeded.backfill}", "--partitioning=key", "--no_progress",
    )  # fmt: skip
    assert code == 0, out
    chosen = [
        d for d in seeded.letters if d.error_type == "zip_code_format" and d.topic == seeded.views
    ]
    got = read_topic(seeded.bootstrap, seeded.backfill)
    assert sorted((g.key, g.value, g.timestamp_ms) for g in got) == sorted(originals(chosen))
    assert read_topic(seeded.bootstrap, seeded.views) == []


def test_replay_of_a_null_value_record_reproduces_the_null(seeded: Seeded):
    code, out = cli(seeded, "replay", "--error_type=MissingValueError", "--no_progress")
    assert code == 0, out
    (got,) = read_topic(seeded.bootstrap, seeded.views)
    (d,) = [d for d in seeded.letters if d.error_type == "MissingValueError"]
    assert (got.key, got.value, got.timestamp_ms) == (d.key, None, d.record_timestamp_ms)


def test_dry_run_lists_the_selection_and_produces_nothing(seeded: Seeded):
    code, out = cli(seeded, "replay", "--stage=decode", "--dry_run")
    assert code == 0
    lines = out.splitlines()
    assert lines[-1] == "dry run: would replay 4 records (stage=decode)"
    assert len(lines) == 5 and all(" -> " in ln for ln in lines[:4])
    assert read_topic(seeded.bootstrap, seeded.events) == []
    assert read_topic(seeded.bootstrap, seeded.views) == []


def test_replay_refuses_an_empty_selection_and_an_unfiltered_one_without_all(
    seeded: Seeded, capsys
):
    code, out = cli(seeded, "replay", "--stage=enrich")
    assert (code, out) == (dlq.EXIT_REFUSED, "")
    assert "nothing selected: none of the 13 dead letters" in capsys.readouterr().err
    code, _ = cli(seeded, "replay", "--no_progress")
    assert code == dlq.EXIT_REFUSED
    assert read_topic(seeded.bootstrap, seeded.events) == []


def test_replay_all_needs_the_flag_and_then_replays_every_dead_letter(seeded: Seeded):
    code, out = cli(seeded, "replay", "--all", "--no_progress")
    assert code == 0, out
    got = read_topic(seeded.bootstrap, seeded.events) + read_topic(seeded.bootstrap, seeded.views)
    assert {(g.key, g.value, g.timestamp_ms) for g in got} == originals(seeded.letters)
    assert len(got) == 13


def test_replay_to_a_missing_topic_fails_without_creating_it(seeded: Seeded, capsys):
    missing = f"test-dlq-missing-{uuid.uuid4().hex[:8]}"
    code, _ = cli(seeded, "replay", "--stage=decode", f"--to={missing}", "--no_progress")
    assert code == dlq.EXIT_FAILED
    assert "does not exist" in capsys.readouterr().err
    admin = AdminClient({"bootstrap.servers": seeded.bootstrap})
    assert missing not in admin.list_topics(timeout=10).topics


def test_replay_to_a_topic_with_too_few_partitions_fails_before_producing(seeded: Seeded, capsys):
    # The backfill topic has 3 partitions; letters 3 and 7 came from partition 3.
    code, _ = cli(seeded, "replay", "--stage=decode", f"--to={seeded.backfill}", "--no_progress")
    assert code == dlq.EXIT_FAILED
    assert "--partitioning key" in capsys.readouterr().err
    assert read_topic(seeded.bootstrap, seeded.backfill) == []


def test_a_transactional_dlq_is_read_to_its_end_with_committed_letters_only(
    kafka_bootstrap: str, make_topic: Any
):
    # Commit markers take offsets that are never delivered; an aborted letter is not a letter.
    topic = make_topic(2, "txn-dlq")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    letter = DeadLetter("decode", "CorruptBodyError", "m", b"k", b"v", "src", 0, 1, 123)
    value = encode_record(letter.to_avro(), "DeadLetter")
    for _ in range(2):
        producer.begin_transaction()
        for partition in (0, 0, 1):
            producer.produce(topic, key=b"k", value=value, partition=partition)
        producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=value, partition=1)
    producer.abort_transaction(30)
    # read_dlq raises TimeoutError when it does not reach the end (markers included) in timeout_s:
    # returning is reaching the end.
    contents = dlq.read_dlq(kafka_bootstrap, topic, timeout_s=60)
    assert [e.dead_letter for e in contents.entries] == [letter] * 6
    assert contents.unreadable == []
