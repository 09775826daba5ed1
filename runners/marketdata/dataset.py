"""The market-data dataset the local service serves: generated, seeded, documented.

The dataset is a pure function of ``(seed, zip_count)``; the same arguments give the same numbers
on every machine and in every process, so tests and benchmarks can assert on values.

Keys:
- zip codes: ``zip_count`` consecutive five-digit codes starting at ``FIRST_ZIP`` (``10001`` ...
  ``10200`` with the default 200). Any other zip code is unknown (the service answers 404).
- property types: the five symbols of the contract's ``PropertyType`` enum. Any other type is
  unknown (404).

Per ``(zip, type)`` the generator draws, from a ``random.Random`` seeded with
``"{seed}:{zip}:{type}"`` (string seeds are hashed with SHA-512 by Python, stable across runs):
- ``median_price``: the zip's base price (log-uniform 150 000 - 2 000 000 USD, drawn from the zip
  alone) times a type factor (LAND 0.35, CONDO 0.7, TOWNHOUSE 0.85, SINGLE_FAMILY 1.0,
  MULTI_FAMILY 1.4) times a ±10 % jitter, whole dollars;
- ``price_trend_30d`` / ``price_trend_90d``: relative change, uniform -0.05..0.05 and -0.12..0.15,
  rounded to 4 decimals;
- ``days_on_market``: 5..120; ``inventory``: 1..400;
- ``comparable_properties``: 3 comparables ``{"property_id": "comp-<zip>-<type>-<i>",
  "price": median ±20 %}``;
- ``market_score``: 0..100, higher for a rising trend, short days on market and low inventory,
  rounded to 1 decimal.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from schemas.contract import PROPERTY_TYPES  # the types the vendor knows

FIRST_ZIP = 10001
DEFAULT_ZIP_COUNT = 200
DEFAULT_SEED = 42
_TYPE_FACTOR = {
    "LAND": 0.35,
    "CONDO": 0.7,
    "TOWNHOUSE": 0.85,
    "SINGLE_FAMILY": 1.0,
    "MULTI_FAMILY": 1.4,
}
COMPARABLE_COUNT = 3


def zip_codes(zip_count: int = DEFAULT_ZIP_COUNT) -> tuple[str, ...]:
    """The zip codes the dataset knows, in order."""
    if not 1 <= zip_count <= 99999 - FIRST_ZIP + 1:
        top = 99999 - FIRST_ZIP + 1
        raise ValueError(f"zip_count must be between 1 and {top}, got {zip_count}")
    return tuple(f"{FIRST_ZIP + i:05d}" for i in range(zip_count))


def market_record(seed: int, zip_code: str, property_type: str) -> dict[str, Any]:
    """The market data of one ``(zip, type)`` (without checking that the zip is in the set)."""
    zip_rng = random.Random(f"{seed}:{zip_code}")
    base_price = math.exp(zip_rng.uniform(math.log(150_000), math.log(2_000_000)))
    rng = random.Random(f"{seed}:{zip_code}:{property_type}")
    median = round(base_price * _TYPE_FACTOR[property_type] * rng.uniform(0.9, 1.1))
    trend_30d = round(rng.uniform(-0.05, 0.05), 4)
    trend_90d = round(rng.uniform(-0.12, 0.15), 4)
    days_on_market = rng.randint(5, 120)
    inventory = rng.randint(1, 400)
    comparables = [
        {
            "property_id": f"comp-{zip_code}-{property_type.lower()}-{i}",
            "price": round(median * rng.uniform(0.8, 1.2)),
        }
        for i in range(COMPARABLE_COUNT)
    ]
    # A simple, explainable score: momentum (trend) + speed (days on market) + scarcity (inventory).
    momentum = (trend_90d + 0.12) / 0.27  # 0..1
    speed = 1 - (days_on_market - 5) / 115  # 0..1
    scarcity = 1 - (inventory - 1) / 399  # 0..1
    score = round(100 * (0.5 * momentum + 0.3 * speed + 0.2 * scarcity), 1)
    return {
        "zip_code": zip_code,
        "property_type": property_type,
        "median_price": median,
        "price_trend_30d": trend_30d,
        "price_trend_90d": trend_90d,
        "days_on_market": days_on_market,
        "inventory": inventory,
        "comparable_properties": comparables,
        "market_score": score,
    }


@dataclass(frozen=True)
class MarketDataset:
    """All records of one seed, generated once at start-up (200 zips x 5 types = 1 000 rows)."""

    seed: int
    zip_count: int
    records: dict[tuple[str, str], dict[str, Any]]

    @classmethod
    def generate(
        cls, seed: int = DEFAULT_SEED, zip_count: int = DEFAULT_ZIP_COUNT
    ) -> MarketDataset:
        records = {
            (z, t): market_record(seed, z, t) for z in zip_codes(zip_count) for t in PROPERTY_TYPES
        }
        return cls(seed=seed, zip_count=zip_count, records=records)

    def lookup(self, zip_code: str, property_type: str) -> dict[str, Any] | None:
        """The record, or None when the zip or the type is unknown."""
        return self.records.get((zip_code, property_type))
