"""Pure helpers of bench.latency: percentiles, pairing outputs with the inputs that caused them."""

from __future__ import annotations

import json
import time

import pytest

from bench.latency import (
    Cause,
    cdf,
    counted_records,
    find_causes,
    latency_stats,
    live_origin_ms,
    log_end_offsets,
    max_rates,
    parse_rates,
    path_latencies,
    percentile,
    records_for,
    trend,
    warmup_records,
)
from bench.report import latency_png, latency_table
from bench.workload import scaled_spec
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate import (
    HOUR_MS,
    PlannedRecord,
    SimulationSpec,
    compute_oracle,
    generate,
)

SPEC = SimulationSpec(fraud_threshold=2, fraud_window_s=600)


def _event(event_id: str, zip_code: str, t: int, partition: int = 0, kind: str = "valid"):
    payload = {"event_id": event_id, "zip_code": zip_code, "event_time": t}
    return PlannedRecord(EVENTS_TOPIC, partition, b"k", b"v", t, kind, payload)


def _view(user: str, t: int, partition: int = 1, kind: str = "valid"):
    payload = {"user_id": user, "property_id": "P1", "event_time": t}
    return PlannedRecord(VIEWS_TOPIC, partition, user.encode(), b"v", t, kind, payload)


def test_percentile_is_the_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(values, 0)


def test_latency_stats_of_unsorted_values():
    stats = latency_stats([30.0, 10.0, 20.0, 1000.0])
    assert stats == {"count": 4, "p50": 20.0, "p90": 1000.0, "p99": 1000.0, "max": 1000.0}
    assert latency_stats([]) == {"count": 0}


def test_trend_shows_a_growing_backlog_in_input_order():
    samples = [(t, 10.0 * t) for t in range(10, 0, -1)]  # given out of order
    assert trend(samples, parts=5) == [10.0, 30.0, 50.0, 70.0, 90.0]
    assert trend(samples[:3], parts=5) == []


def test_cdf_ends_at_one_and_is_thinned():
    points = cdf(range(1000), points=10)
    assert len(points) == 10
    assert points[-1] == (999, 1.0)
    assert [p for _, p in points] == sorted(p for _, p in points)
    assert cdf([]) == []


def test_counted_records_leave_out_poison_and_records_late_in_the_log():
    late_t = 0  # window [0, 1 h) ends long before the stream time of the partition
    records = [
        _event("a", "10001", 5 * HOUR_MS),
        PlannedRecord(EVENTS_TOPIC, 0, b"k", b"\x00", 6 * HOUR_MS, "poison:short"),
        _event("late", "10001", late_t),
        _event("b", "10001", late_t, partition=1),  # another partition: on time there
    ]
    assert counted_records(records, SPEC) == [True, False, False, True]


def test_each_output_is_paired_with_its_cause():
    window = SPEC.fraud_window_s * 1000
    records = [
        _event("e1", "10001", 1_000),
        _view("bot", 1_000),
        _event("e2", "10001", 2_000),
        _view("bot", 2_000),
        _view("bot", 3_000),  # the 3rd view crosses the threshold of 2
        _view("bot", 4_000),
        _event("e3", "10002", 3_000),
    ]
    sent = [100.0, 110.0, 200.0, 210.0, 300.0, 310.0, 400.0]
    causes = find_causes(records, sent, [True] * len(records), 2, window)
    assert causes.by_event_id["e2"] == Cause(200.0, 2)
    assert causes.zip_updates["10001"] == [Cause(100.0, 0), Cause(200.0, 2)]
    assert causes.alert == {"bot:0": Cause(300.0, 4)}

    zips = [(250, {"zip_code": "10001", "count": 2}), (150, {"zip_code": "10001", "count": 1})]
    assert path_latencies("counts_by_zip", zips, causes, 0, HOUR_MS) == (
        [(200.0, 50), (100.0, 50)],
        0,
    )
    # Outputs caused by the warm-up (before measured_from) are not measured.
    assert path_latencies("counts_by_zip", zips, causes, 1, HOUR_MS) == ([(200.0, 50)], 0)
    alerts = [(330, {"alert_id": "bot:0"}), (340, {"alert_id": "bot:0"}), (9, {"alert_id": "x:0"})]
    assert path_latencies("alerts", alerts, causes, 0, HOUR_MS) == ([(300.0, 30)], 1)
    enriched = [(260, {"event_id": "e2"}), (999, {"event_id": "unknown"})]
    assert path_latencies("enriched", enriched, causes, 0, HOUR_MS) == ([(200.0, 60)], 1)


def test_hourly_latency_is_from_window_end_to_the_first_pane():
    size = 30_000
    panes = [
        (31_500, {"property_id": "P1", "window_start": 0}),
        (40_000, {"property_id": "P1", "window_start": 0}),  # a later pane: not the firing
        (61_000, {"property_id": "P2", "window_start": 30_000}),
        (5_000, {"property_id": "P3", "window_start": -30_000}),  # ends before the measured log
    ]
    samples, unmatched = path_latencies("views_hourly", panes, None, 0, size, window_from_ms=0)
    assert samples == [(30_000, 1_500), (60_000, 1_000)] and unmatched == 0


def test_pairing_refuses_misaligned_inputs():
    with pytest.raises(ValueError):
        find_causes([_event("e", "1", 0)], [], [True], 2, 1000)


def test_warmup_records_cover_every_zip_and_type_and_keep_the_simulation_oracle():
    spec = scaled_spec(2_000, end_ms=100 * HOUR_MS)
    sim = generate(spec, now_ms=100 * HOUR_MS)
    warm = warmup_records(sim.records, spec)
    events = [r for r in warm if r.topic == EVENTS_TOPIC]
    keys = {
        (r.payload["zip_code"], r.payload["property_type"])
        for r in sim.records
        if r.topic == EVENTS_TOPIC and r.kind == "valid"
    }
    assert {(r.payload["zip_code"], r.payload["property_type"]) for r in events} == keys
    assert all(r.payload["event_type"] == "LISTING_UPDATED" for r in events)
    both = compute_oracle([*warm, *sim.records], spec)
    # Warm-up adds its own events and views and never makes a simulated record late or alert.
    assert both.late == sim.oracle.late and both.alert_ids == sim.oracle.alert_ids
    assert both.valid_events == sim.oracle.valid_events + len(events)
    assert len(both.listing_updated_event_ids) == len(sim.oracle.listing_updated_event_ids) + len(
        events
    )


def test_end_offsets_of_a_planned_log():
    records = [_event("a", "1", 0, 0), _event("b", "1", 0, 0), _view("u", 0, 3)]
    topics = {EVENTS_TOPIC: "in-e", VIEWS_TOPIC: "in-v"}
    assert log_end_offsets(records, topics) == {("in-e", 0): 2, ("in-v", 3): 1}


def test_live_origin_is_the_next_window_boundary_after_a_lead():
    assert live_origin_ms(100_000, 30_000, lead_ms=2_000) == 120_000
    assert live_origin_ms(118_000, 30_000, lead_ms=2_000) == 120_000
    assert live_origin_ms(118_001, 30_000, lead_ms=2_000) == 150_000


def test_records_for_a_rate_are_capped():
    assert records_for(1_000, 90, 100_000) == 90_000
    assert records_for(10_000, 90, 100_000) == 100_000
    assert records_for(5, 90, 100_000) == 2_000


def test_rates_from_the_flag_and_from_compare_results(tmp_path):
    assert parse_rates("raw=100, flink=2.5") == {"raw": 100.0, "flink": 2.5}
    assert parse_rates(None) == {}
    for bad in ("raw", "raw=x", "nope=3", "raw=0"):
        with pytest.raises(ValueError, match="--rate"):
            parse_rates(bad)

    def write(name: str, records: int, *rows: tuple[str, int, bool]) -> None:
        results = [{"system": s, "sustained_eps": e, "correct": ok} for s, e, ok in rows]
        (tmp_path / name).write_text(json.dumps({"records": records, "results": results}))
        time.sleep(0.01)  # distinct modification times: the newest run wins

    write("compare-1.json", 20_000, ("prism", 2000, True), ("flink", 100, True))
    write("compare-2.json", 20_000, ("flink", 300, True), ("raw", 9, False))  # wrong: not a max
    write("compare.json", 100_000, ("prism", 5, True))
    assert max_rates(tmp_path, 20_000) == {"prism": 2000.0, "flink": 300.0}
    assert max_rates(tmp_path, 5) == {}


def test_latency_table_and_png():
    row = {
        "system": "prism",
        "records": 9000,
        "rate_eps": 100,
        "max_eps": 200,
        "achieved_eps": 99,
        "paths": {"enriched": {"count": 3, "p50": 5.0, "p90": 6.0, "p99": 7.0, "max": 8.0}},
        "cdf": {"enriched": [(5.0, 0.5), (8.0, 1.0)]},
        "unmatched": {"alerts": 1},
        "correct": False,
        "differences": ["alert ids: expected 1, got 0"],
        "warmup_s": 40.0,
        "cpu_s_per_million": 12.0,
        "note": "streaming",
    }
    text = latency_table([row])
    assert "prism" in text and "DIFFERS" in text and "0.5" in text
    assert latency_png([row]).startswith(b"\x89PNG")
