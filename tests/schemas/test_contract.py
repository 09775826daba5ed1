"""The contract's constants (``schemas/contract.py``) are what every other place says.

Topic names live in the module, in the stack's topic and ACL configuration (TOML, which cannot
import them) and in ``docs/contract.md``: these tests keep them from drifting apart.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pipelines.options import PropertyConfig, PropertyTopics
from runners.kafka import load_topics
from schemas import CATALOG, contract
from transforms import fraud, lateness, validation, windowing
from transforms.enrichment import ENRICHED_SCHEMA_ID

REPO = Path(__file__).resolve().parents[2]


def test_the_stack_creates_exactly_the_contracts_topics() -> None:
    assert sorted(spec.name for spec in load_topics()) == sorted(
        contract.INPUT_TOPICS + contract.OUTPUT_TOPICS
    )


def test_the_pipelines_acls_read_the_inputs_and_write_the_outputs() -> None:
    with open(REPO / "runners" / "security.toml", "rb") as fh:
        acls = [a for a in tomllib.load(fh)["acl"] if a["user"] == "pipeline"]
    topics = [a for a in acls if a["resource"] == "topic"]
    read = {n for a in topics if "READ" in a["operations"] for n in a["names"]}
    write = {n for a in topics if "WRITE" in a["operations"] for n in a["names"]}
    assert read == set(contract.INPUT_TOPICS)
    assert write == set(contract.OUTPUT_TOPICS)


def test_the_contract_document_names_the_same_default_topics() -> None:
    text = (REPO / "docs" / "contract.md").read_text()
    named = set(re.findall(r"^\| ([a-z-]+) \|", text, flags=re.MULTILINE)) - {"topic"}
    assert named == set(contract.INPUT_TOPICS + contract.OUTPUT_TOPICS)


def test_the_pipelines_defaults_are_the_contracts() -> None:
    topics = PropertyTopics()
    assert (topics.events, topics.views) == contract.INPUT_TOPICS
    assert (
        topics.enriched,
        topics.high_value,
        topics.zip_counts,
        topics.views_hourly,
        topics.alerts,
        topics.dlq,
        topics.late,
    ) == contract.OUTPUT_TOPICS
    config = PropertyConfig()
    assert (config.window_size_s, config.allowed_lateness_s) == (
        contract.WINDOW_SIZE_S,
        contract.ALLOWED_LATENESS_S,
    )


def test_time_defaults_agree_across_transforms() -> None:
    assert (lateness.DEFAULT_WINDOW_SIZE_S, lateness.DEFAULT_ALLOWED_LATENESS_S) == (3600, 600)
    # Beam must not drop what the gate passed: its lateness covers the gate's window + lateness.
    assert windowing.DEFAULT_ALLOWED_LATENESS_S == 3600 + 600
    assert fraud.DEFAULT_ALLOWED_LATENESS_S == 3600 + 600


def test_enum_symbols_come_from_the_schemas() -> None:
    definition = CATALOG.latest("PropertyEvent").definition
    (event_type,) = [f for f in definition["fields"] if f["name"] == "event_type"]
    assert tuple(event_type["type"]["symbols"]) == contract.EVENT_TYPES
    assert frozenset(contract.EVENT_TYPES) == validation.EVENT_TYPES
    assert contract.LISTING_UPDATED in contract.EVENT_TYPES
    assert ENRICHED_SCHEMA_ID == CATALOG.latest("EnrichedPropertyEvent").schema_id == 100
