"""The market-data service's dataset, without the service: seeded, complete, plausible."""

from __future__ import annotations

import pytest

from runners.marketdata.dataset import PROPERTY_TYPES, MarketDataset, market_record, zip_codes


def test_dataset_is_deterministic_for_a_seed_and_differs_between_seeds() -> None:
    assert MarketDataset.generate(seed=7).records == MarketDataset.generate(seed=7).records
    assert market_record(7, "10001", "CONDO") != market_record(8, "10001", "CONDO")


def test_dataset_covers_200_zips_times_5_types_with_plausible_values() -> None:
    dataset = MarketDataset.generate()
    assert len(zip_codes()) == 200
    assert zip_codes()[0] == "10001" and zip_codes()[-1] == "10200"
    assert len(dataset.records) == 200 * len(PROPERTY_TYPES)
    for record in dataset.records.values():
        assert 0 < record["median_price"] < 5_000_000
        assert 0 <= record["market_score"] <= 100
        assert len(record["comparable_properties"]) == 3


def test_zip_count_out_of_range_is_rejected_with_a_reason() -> None:
    with pytest.raises(ValueError, match="zip_count must be between"):
        zip_codes(0)
