"""bench.latency_attribution's pure pieces: the input plan, the segments and the exactness check."""

from __future__ import annotations

import pytest

from bench.latency_attribution import (
    check_exact,
    parse_variant,
    plan,
    segments_of,
    templates,
    warmup_payloads,
)
from transforms.codec import decode_record


def test_planned_events_are_high_value_listing_updates_due_at_the_rate():
    payloads = templates(threshold=500_000)
    planned = plan(payloads, 4, start_ms=10_000, rate=2.0, prefix="t")
    assert [p.due_ms for p in planned] == [10_000, 10_500, 11_000, 11_500]
    assert [p.event_id for p in planned] == ["t-000000", "t-000001", "t-000002", "t-000003"]
    for p in planned:
        value = decode_record(p.value, "PropertyEvent")[1]
        assert value["event_type"] == "LISTING_UPDATED"
        assert value["price"] > 500_000
        assert value["event_time"] == p.due_ms
        assert 0 <= p.partition < 4


def test_warmup_has_one_payload_per_market_data_key():
    payloads = templates(threshold=500_000)
    warm = warmup_payloads(payloads)
    keys = {(p["zip_code"], p["property_type"]) for p in payloads}
    assert len(warm) == len(keys)
    assert {(p["zip_code"], p["property_type"]) for p in warm} == keys


def test_segments_pair_each_output_with_its_input_times():
    timing = {
        "send": {"a": 1_000.0, "b": 2_000.0},
        "ack": {"a": 1_010.0, "b": 2_005.0},
        "written": {"a": 1_500, "b": 2_300},
        "seen": {"a": [1_530.0, 1_900.0], "b": [2_340.0]},
    }
    enriched = [(1_520, {"event_id": "a"}), (2_400, {"event_id": "b"}), (9_999, {"event_id": "a"})]
    s = segments_of(timing, enriched)
    assert s["append"] == [10.0, 5.0]
    assert s["pipeline"] == [490.0, 295.0]
    assert s["write->append"] == [30.0, 40.0]
    assert s["total high_value"] == [530.0, 340.0]
    assert s["total enriched"] == [520.0, 400.0]  # the first copy of a repeated output counts


def test_exactness_names_missing_and_repeated_outputs():
    rows = [(0, {"event_id": "a"}), (0, {"event_id": "a"})]
    assert check_exact({"a"}, [(0, {"event_id": "a"})], [(0, {"event_id": "a"})]) == []
    assert check_exact({"a", "b"}, rows, []) == [
        "high_value: 1 missing, 1 repeated",
        "enriched: 2 missing, 0 repeated",
    ]


def test_variant_is_a_name_and_shell_split_flags():
    assert parse_variant("poll1=--kafka_poll_timeout_s=1 --parallelism=8") == (
        "poll1",
        ["--kafka_poll_timeout_s=1", "--parallelism=8"],
    )
    assert parse_variant("preset") == ("preset", [])
    with pytest.raises(ValueError, match="NAME"):
        parse_variant("=--x=1")
