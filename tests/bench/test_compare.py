"""Pure helpers of bench.compare and bench.report."""

from __future__ import annotations

import pytest

from bench.compare import rate
from bench.report import png, table, with_ratios
from bench.workload import flink_master_flags, scaled_spec, system_topics, topic_flags


def _row(system, eps, cpu):
    return {
        "system": system,
        "records": 1000,
        "startup_s": 1.0,
        "sustained_eps": eps,
        "sustained_basis": "input consumed",
        "end_to_end_eps": eps / 2,
        "cpu_s_per_million": cpu,
        "peak_rss_mb": 100,
        "correct": True,
        "note": "",
    }


def test_scaled_spec_keeps_ordinary_users_below_the_fraud_threshold():
    spec = scaled_spec(500_000)
    assert spec.events + spec.views == 500_000
    views_per_user_window = spec.views / spec.users / (spec.span_h * 6)
    assert views_per_user_window < spec.fraud_threshold / 10


def _property_keys(records) -> set[tuple[str, str]]:
    return {
        (r.payload["zip_code"], r.payload["property_type"])
        for r in records
        if r.kind == "valid" and "zip_code" in r.payload
    }


def test_a_known_or_unknown_key_input_has_only_keys_in_or_outside_the_market_data():
    from runners.marketdata.dataset import MarketDataset
    from tools.simulate import generate

    def keys_of(keys: str) -> set[tuple[str, str]]:
        spec = scaled_spec(5_000, keys=keys)
        return _property_keys(generate(spec, now_ms=1_780_000_000_000).records)

    market = MarketDataset.generate()
    known, unknown, mixed = keys_of("known"), keys_of("unknown"), keys_of("mixed")
    assert any(market.lookup(*key) for key in mixed) and not all(market.lookup(*k) for k in mixed)
    assert known and all(market.lookup(*key) for key in known)
    assert unknown and not any(market.lookup(*key) for key in unknown)
    assert abs(len(unknown) - len(known)) <= len(known) // 10, (len(known), len(unknown))


def test_scaled_spec_refuses_a_tiny_run():
    with pytest.raises(ValueError, match="--events"):
        scaled_spec(10)


def test_each_system_gets_its_own_output_topics_and_shares_the_inputs():
    a = system_topics("raw", "t1", ("in-e", "in-v"))
    b = system_topics("flink", "t1", ("in-e", "in-v"))
    outputs = set(vars(a).values()) - {"in-e", "in-v"}
    assert (a.events, a.views) == (b.events, b.views) == ("in-e", "in-v")
    assert len(outputs) == 7 and not outputs & set(vars(b).values())
    assert "--dlq_topic=bench-t1-raw-dlq" in topic_flags(a)


def test_rate_is_zero_without_a_time_span():
    assert rate(100, None) == 0 and rate(100, 0) == 0 and rate(100, 4) == 25


def test_ratios_are_relative_to_the_raw_loop():
    rows = with_ratios([_row("raw", 10_000, 50.0), _row("flink", 2_500, 400.0)])
    assert [(r["eps_vs_raw"], r["cpu_vs_raw"]) for r in rows] == [(1.0, 1.0), (0.25, 8.0)]


def test_table_has_a_line_per_system_and_no_ratio_without_the_raw_loop():
    text = table([_row("prism", 3_000, 100.0)])
    assert "prism" in text and " - " in text


def test_png_renders():
    assert png([_row("raw", 10_000, 50.0), _row("prism", 3_000, 100.0)])[:4] == b"\x89PNG"


def test_flink_systems_name_where_their_job_runs_explicitly():
    assert flink_master_flags("flink", None) == ["--flink_master=[local]"]
    assert flink_master_flags("flink_cluster", "localhost:8081") == [
        "--flink_master=localhost:8081"
    ]
    assert flink_master_flags("prism", None) == []


def test_the_session_cluster_system_needs_the_cluster_address():
    with pytest.raises(ValueError, match="REST address"):
        flink_master_flags("flink_cluster", None)


def test_the_split_systems_run_in_the_pool_with_the_split_flag():
    from bench.workload import POOL_SYSTEMS, RUNNERS, SYSTEMS, split_flags

    assert "prism_split" in SYSTEMS and "flink_split" in SYSTEMS  # make bench measures them
    for system in ("prism_split", "flink_split"):
        assert system in POOL_SYSTEMS
        assert split_flags(system) == ["--split_python_workers"]
    assert RUNNERS["prism_split"] == "PrismRunner" and RUNNERS["flink_split"] == "FlinkRunner"
    assert split_flags("prism") == split_flags("flink_pool") == []
