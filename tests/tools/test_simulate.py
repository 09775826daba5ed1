"""The simulator's plan and its oracle: the reference every end-to-end test compares against."""

import dataclasses
import shlex
from collections import Counter
from pathlib import Path

import pytest

from tools.simulate import (
    HOUR_MS,
    POISON_EVENT_CLASSES,
    POISON_VIEW_CLASSES,
    Oracle,
    PlannedRecord,
    SimulationSpec,
    compute_oracle,
    generate,
)
from tools.simulate.cli import main
from tools.simulate.spec import INCOMPATIBLE
from transforms.codec import DecodeError, decode_record

NOW_MS = 1_795_800_000_000
SMALL = SimulationSpec(properties=50, users=40, events=400, views=1_500, bots=2, too_late=8)


@pytest.fixture(scope="module")
def sim():
    return generate(SMALL, now_ms=NOW_MS)


def test_same_spec_and_clock_plan_the_same_bytes(sim):
    again = generate(SMALL, now_ms=NOW_MS)
    assert [(r.partition, r.key, r.value, r.timestamp_ms) for r in again.records] == [
        (r.partition, r.key, r.value, r.timestamp_ms) for r in sim.records
    ]


def test_the_logged_replay_command_plans_the_same_oracle(tmp_path: Path) -> None:
    """A log built from the wall clock (what the end-to-end tests do) is replayed from the
    command its Simulation carries: seed, clock and non-default spec fields."""
    sim = generate(SMALL)
    argv = shlex.split(sim.replay)
    assert argv[:4] == ["python", "-m", "tools.simulate", "--dry_run"]
    assert main([*argv[3:], f"--oracle={tmp_path / 'oracle.json'}"]) == 0
    assert Oracle.from_json((tmp_path / "oracle.json").read_text()) == sim.oracle


def test_every_record_is_counted_exactly_once_as_valid_late_or_dead_letter(sim):
    o = sim.oracle
    assert (
        o.valid_events
        + o.late_by_topic.get("property-events", 0)
        + o.dead_letters_by_topic["property-events"]
        == o.records_by_topic["property-events"]
    )
    assert (
        o.valid_views
        + o.late_by_topic.get("property-views", 0)
        + o.dead_letters_by_topic["property-views"]
        == o.records_by_topic["property-views"]
    )
    assert sum(o.counts_by_zip.values()) == o.valid_events
    assert sum(o.hourly_views.values()) == o.valid_views


def test_too_late_records_are_late_in_the_log_and_nothing_else_is(sim):
    kinds = Counter(r.kind for r in sim.records)
    assert sim.oracle.late == kinds["too_late"] == SMALL.too_late


def test_every_poison_class_is_planned_and_none_decodes_into_a_valid_record(sim):
    poison = [r for r in sim.records if r.kind.startswith("poison:")]
    classes = {(r.topic, r.kind.removeprefix("poison:")) for r in poison}
    assert {c for t, c in classes if t == "property-events"} == set(POISON_EVENT_CLASSES)
    assert {c for t, c in classes if t == "property-views"} == set(POISON_VIEW_CLASSES)
    assert sim.oracle.dead_letters == len(poison)
    undecodable = 0
    for r in poison:
        try:
            decode_record(
                r.value, "PropertyEvent" if r.topic == "property-events" else "PropertyView"
            )
        except DecodeError:
            undecodable += 1
    # null, short, bad magic, unknown id, corrupt body and wrong schema must fail decoding; the
    # rest decode and are rejected by validation.
    assert undecodable == SMALL.poison_per_class * (6 + 2)


def test_each_bot_crosses_the_fraud_threshold_once(sim):
    bots = sorted(a.split(":")[0] for a in sim.oracle.alert_ids)
    assert bots == ["BOT000", "BOT001"]


def test_record_timestamps_are_event_times_capped_at_send_time(sim):
    for r in sim.records:
        if r.payload is not None:
            assert r.timestamp_ms == min(r.payload["event_time"], NOW_MS)
    future = [r for r in sim.records if r.kind == "poison:future_event_time"]
    assert future and all(r.timestamp_ms == NOW_MS for r in future)


def test_oracle_moves_a_record_to_late_only_when_its_own_partition_passed_its_window():
    def view(partition: int, event_time: int) -> PlannedRecord:
        payload = {
            "view_id": "v",
            "user_id": "U1",
            "property_id": "P1",
            "channel": "WEB",
            "event_time": event_time,
        }
        return PlannedRecord("property-views", partition, b"U1", b"", event_time, "valid", payload)

    t0 = 10 * HOUR_MS
    spec = SimulationSpec(partitions=2)
    # Partition 0 races 2 h ahead; the same old view is on time in partition 1, late in partition 0.
    log = [view(0, t0 + 2 * HOUR_MS), view(1, t0), view(1, t0 - 5 * 60_000), view(0, t0)]
    oracle = compute_oracle(log, spec)
    assert oracle.late == 1
    assert oracle.valid_views == 3


def test_compress_time_keeps_the_oracle_and_never_stamps_poison_ahead_of_the_log():
    from tools.simulate import HOUR_MS, compress_time, scaled_spec

    end_ms = 1_800_000_000_000 // HOUR_MS * HOUR_MS
    spec = SimulationSpec(
        properties=40, users=30, events=200, views=800, bots=2, too_late=4, end_ms=end_ms
    )
    sim = generate(spec, now_ms=end_ms)
    origin_ms = 1_900_000_000_000 // 30_000 * 30_000  # aligned to the compressed hour
    live = compress_time(sim, spec, 120, origin_ms)
    assert scaled_spec(spec, 120).gate_window_s == 30
    # Compressing windows, lateness and time alike changes no decision of the oracle.
    assert live.oracle.counts_by_zip == sim.oracle.counts_by_zip
    assert live.oracle.late == sim.oracle.late
    assert live.oracle.dead_letters == sim.oracle.dead_letters
    assert len(live.oracle.alert_ids) == len(sim.oracle.alert_ids) == 2
    assert sorted(live.oracle.hourly_views.values()) == sorted(sim.oracle.hourly_views.values())
    span_ms = spec.span_h * HOUR_MS // 120
    assert all(origin_ms <= r.timestamp_ms <= origin_ms + span_ms for r in live.records)
    clock = 0
    for r in live.records:
        if r.kind.startswith("poison:"):
            assert r.timestamp_ms <= max(clock, origin_ms)
        else:
            clock = max(clock, r.timestamp_ms)


def test_scaled_spec_refuses_a_speedup_that_does_not_divide_the_windows():
    from tools.simulate import scaled_spec

    with pytest.raises(ValueError, match="does not divide"):
        scaled_spec(SimulationSpec(), 7)


def test_v2_events_read_as_v1_give_the_same_payloads_and_oracle():
    """``v2_share`` re-writes valid events with the compatible v2 writer schema: the v1 reader
    reads them as the same payloads, so the oracle is the all-v1 log's."""
    from schemas import CATALOG, SchemaEntry
    from tools.simulate.records import PROPERTY_EVENT_V2

    spec = dataclasses.replace(SMALL, v2_share=0.4, v2_schema_id=110)
    mixed = generate(spec, now_ms=NOW_MS)
    plain = generate(SMALL, now_ms=NOW_MS)
    assert mixed.oracle == plain.oracle
    v2 = SchemaEntry.of(110, "property.events.PropertyEvent", 2, PROPERTY_EVENT_V2)
    catalog = CATALOG.with_entry(v2)
    ids = Counter()
    for a, b in zip(mixed.records, plain.records, strict=True):
        assert (a.key, a.kind, a.payload) == (b.key, b.kind, b.payload)
        if a.value != b.value:
            schema_id, decoded = decode_record(
                a.value, CATALOG.version("PropertyEvent", 1), catalog=catalog
            )
            assert schema_id == 110 and decoded == a.payload
        ids[int.from_bytes(a.value[1:5], "big") if a.value and len(a.value) > 5 else None] += 1
    assert 0.3 < ids[110] / plain.oracle.valid_events < 0.5, ids


def test_incompatible_events_are_poison_the_v1_reader_cannot_resolve():
    from schemas import CATALOG, SchemaEntry
    from tools.simulate.records import PROPERTY_EVENT_INCOMPATIBLE
    from transforms.codec import IncompatibleSchemaError

    spec = dataclasses.replace(SMALL, incompatible=12, incompatible_schema_id=111)
    sim = generate(spec, now_ms=NOW_MS)
    bad = [r for r in sim.records if r.kind == INCOMPATIBLE]
    assert len(bad) == 12
    plain = generate(SMALL, now_ms=NOW_MS)
    assert [r for r in sim.records if r.kind != INCOMPATIBLE] == plain.records
    assert sim.oracle.dead_letters == plain.oracle.dead_letters + 12
    entry = SchemaEntry.of(111, "property.events.PropertyEvent", 3, PROPERTY_EVENT_INCOMPATIBLE)
    catalog = CATALOG.with_entry(entry)
    for r in bad:
        with pytest.raises(IncompatibleSchemaError):
            decode_record(r.value, CATALOG.version("PropertyEvent", 1), catalog=catalog)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"v2_share": 0.1}, "v2_schema_id"),
        ({"v2_share": 1.5, "v2_schema_id": 9}, r"v2_share must be in \[0, 1\]"),
        ({"incompatible": 3}, "incompatible_schema_id"),
    ],
)
def test_schema_version_fields_without_their_ids_are_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(SMALL, **fields)
