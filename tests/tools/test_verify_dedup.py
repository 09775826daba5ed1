"""The fault suite's judge: de-duplication by the keys of docs/delivery.md, loss and repeats."""

from __future__ import annotations

from tools.simulate import Oracle
from tools.verify import deduplicate, judge

ORACLE = Oracle(
    counts_by_zip={"10001": 2},
    hourly_views={"p1|0": 3},
    alert_ids=["u1:0"],
    high_value_event_ids=["e2"],
    listing_updated_event_ids=["e1"],
    dead_letters=1,
    late=1,
)


def _outputs(**overrides):
    outputs = {
        "counts_by_zip": [{"zip_code": "10001", "count": 1}, {"zip_code": "10001", "count": 2}],
        "views_hourly": [
            {"property_id": "p1", "window_start": 0, "view_count": 3, "pane": "ON_TIME"}
        ],
        "alerts": [{"alert_id": "u1:0"}],
        "high_value": [{"event_id": "e2"}],
        "enriched": [{"event_id": "e1", "enrichment_status": "ENRICHED"}],
        "dead_letters": [{"stage": "decode", "topic": "t", "partition": 0, "offset": 7}],
        "late": [{"topic": "t", "partition": 1, "offset": 9}],
    }
    outputs.update(overrides)
    return outputs


def test_exact_outputs_are_judged_equal_with_no_loss_and_no_duplicates():
    verdict = judge(_outputs(), ORACLE)
    assert verdict.diffs == []
    assert verdict.total_lost == 0
    assert verdict.total_duplicates == 0
    assert verdict.total_records == 8


def test_repeats_by_the_documented_keys_are_counted_and_dropped():
    outputs = _outputs()
    repeated = {name: records + records[-1:] for name, records in outputs.items()}
    verdict = judge(repeated, ORACLE)
    assert verdict.diffs == []
    assert verdict.duplicates == dict.fromkeys(outputs, 1)


def test_a_running_count_with_a_new_value_is_an_update_not_a_repeat():
    kept, repeats = deduplicate(_outputs())
    assert repeats["counts_by_zip"] == 0
    assert len(kept["counts_by_zip"]) == 2


def test_a_later_pane_with_the_same_count_is_a_firing_not_a_repeat():
    on_time = {"property_id": "p1", "window_start": 0, "view_count": 3, "pane": "ON_TIME"}
    _, repeats = deduplicate(_outputs(views_hourly=[on_time, {**on_time, "pane": "LATE"}]))
    assert repeats["views_hourly"] == 0


def test_missing_records_are_lost_per_output():
    verdict = judge(
        _outputs(
            enriched=[],
            counts_by_zip=[{"zip_code": "10001", "count": 1}],
            dead_letters=[],
        ),
        ORACLE,
    )
    assert verdict.lost["enriched"] == 1
    assert verdict.lost["counts_by_zip"] == 1
    assert verdict.lost["dead_letters"] == 1
    assert verdict.total_lost == 3
    assert len(verdict.diffs) == 3


def test_a_count_above_the_oracle_is_a_difference_but_not_a_loss():
    verdict = judge(_outputs(counts_by_zip=[{"zip_code": "10001", "count": 3}]), ORACLE)
    assert verdict.total_lost == 0
    assert any(d.startswith("counts_by_zip") for d in verdict.diffs)
