"""The enrichment check of the oracle comparison (``tools.verify.enrichment_differences``):
statuses and market fields of the enriched events against the dataset the service serves."""

from __future__ import annotations

from typing import Any

from runners.marketdata.dataset import MarketDataset
from tools.simulate import Oracle
from tools.verify import differences, summarize
from transforms.enrichment.rules import ENRICHED, FALLBACK, MARKET_FIELDS, STALE

DATASET = MarketDataset.generate(seed=7, zip_count=3)
KNOWN = ("10001", "CONDO")
UNKNOWN = ("00000", "CONDO")


def enriched(event_id: str, key: tuple[str, str], status: str, **market: Any) -> dict[str, Any]:
    fields = DATASET.lookup(*key) if status in (ENRICHED, STALE) and not market else market
    return {
        "event_id": event_id,
        "zip_code": key[0],
        "property_type": key[1],
        "enrichment_status": status,
        **{f: (fields or {}).get(f) for f in MARKET_FIELDS},
    }


def diffs(*records: dict[str, Any], healthy: bool = True) -> list[str]:
    oracle = Oracle(listing_updated_event_ids=[r["event_id"] for r in records])
    summary = summarize({"enriched": list(records)})
    return differences(summary, oracle, DATASET.lookup, service_healthy=healthy)


def test_enriched_with_the_services_values_and_unknown_keys_fallen_back_pass() -> None:
    assert diffs(enriched("a", KNOWN, ENRICHED), enriched("b", UNKNOWN, FALLBACK)) == []


def test_a_market_field_unlike_the_services_is_reported() -> None:
    wrong = {**DATASET.lookup(*KNOWN), "median_price": DATASET.lookup(*KNOWN)["median_price"] + 1}
    found = diffs(enriched("a", KNOWN, ENRICHED, **wrong))
    assert found == [
        "enrichment: 1 events ENRICHED with market fields unlike the service's, e.g. ['a']"
    ]


def test_every_event_fallen_back_fails_when_the_service_was_healthy() -> None:
    found = diffs(enriched("a", KNOWN, FALLBACK), enriched("b", KNOWN, FALLBACK))
    assert len(found) == 1 and "2 events FALLBACK although the service knows" in found[0]


def test_fallbacks_and_stale_copies_pass_when_faults_were_injected() -> None:
    records = (enriched("a", KNOWN, FALLBACK), enriched("b", KNOWN, STALE))
    assert diffs(*records, healthy=False) == []
    assert len(diffs(*records, healthy=True)) == 2


def test_an_unknown_key_enriched_and_a_fallback_with_values_are_reported() -> None:
    found = diffs(
        enriched("a", UNKNOWN, ENRICHED, median_price=1),
        enriched("b", KNOWN, FALLBACK, **DATASET.lookup(*KNOWN)),
        healthy=False,
    )
    assert len(found) == 2
    assert any("unknown key not FALLBACK" in d for d in found)
    assert any("FALLBACK with market fields set" in d for d in found)


def test_without_a_market_lookup_only_the_ids_are_compared() -> None:
    oracle = Oracle(listing_updated_event_ids=["a"])
    summary = summarize({"enriched": [enriched("a", KNOWN, FALLBACK)]})
    assert differences(summary, oracle) == []
