"""The schema catalog: the contract's schemas byte-for-byte, ids, look-ups, parsing once."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pytest

import schemas
from schemas import CATALOG, Catalog, SchemaEntry, SchemaNotFoundError, load_catalog
from tests.contract_files import CONTRACT_DIR


@pytest.mark.parametrize("file_name", ["property_event.avsc", "property_view.avsc"])
def test_input_schemas_are_byte_for_byte_the_contracts(file_name: str) -> None:
    contract = CONTRACT_DIR / file_name
    if not contract.exists():
        pytest.fail(f"{contract} is missing: the contract's schemas belong in docs/contract/")
    assert (schemas.SCHEMA_DIR / file_name).read_bytes() == contract.read_bytes()


def test_catalog_ids_are_the_contracts_and_the_projects() -> None:
    expected = {
        1: "property.events.PropertyEvent",
        2: "property.events.PropertyView",
        101: "property.events.ZipCount",
        102: "property.events.PropertyViewCount",
        103: "property.events.Alert",
        104: "property.events.LateRecord",
        105: "property.events.DeadLetter",
    }
    got = {e.schema_id: e.name for e in CATALOG}
    for schema_id, name in expected.items():
        assert got[schema_id] == name
    if (schemas.SCHEMA_DIR / "enriched_property_event.avsc").exists():
        assert got[100] == "property.events.EnrichedPropertyEvent"
    else:
        assert 100 not in CATALOG


def test_lookup_by_full_and_short_name_and_id_give_the_same_entry() -> None:
    by_short = CATALOG.latest("ZipCount")
    assert CATALOG.latest("property.events.ZipCount") is by_short
    assert CATALOG.by_id(schemas.ZIP_COUNT_ID) is by_short
    assert by_short.subject == "property.events.ZipCount"
    assert by_short.version == 1


def test_unknown_id_or_name_raises_schema_not_found() -> None:
    with pytest.raises(SchemaNotFoundError, match="no schema with id 999"):
        CATALOG.by_id(999)
    with pytest.raises(SchemaNotFoundError, match="no schema named 'Nope'"):
        CATALOG.latest("Nope")
    assert CATALOG.find(999) is None


def test_every_entry_is_parsed_once_without_time_logical_types() -> None:
    for entry in CATALOG:
        assert entry.parsed.get("__fastavro_parsed") is True
        assert "timestamp-millis" not in json.dumps(entry.parsed)
    # The definition keeps the annotation consumers see.
    assert "timestamp-millis" in json.dumps(CATALOG.latest("PropertyEvent").definition)


def test_dead_letter_schema_fits_dead_letter_to_avro() -> None:
    from transforms.dead_letter import DeadLetter
    from transforms.types import KafkaRecord

    letter = DeadLetter.of(
        "decode", "BadMagicByteError", "why", KafkaRecord(b"k", b"v", "t", 3, 42, 1_700_000_000_000)
    )
    parsed = CATALOG.latest("DeadLetter").parsed
    assert fastavro.validate(letter.to_avro(), parsed, strict=True)


def test_a_later_version_is_added_under_a_new_id_and_becomes_latest() -> None:
    v1 = CATALOG.latest("PropertyView")
    v2_definition = {
        **v1.definition,
        "fields": [
            *v1.definition["fields"],
            {"name": "referrer", "type": ["null", "string"], "default": None},
        ],
    }
    extended = CATALOG.with_entry(SchemaEntry.of(200, v1.subject, 2, v2_definition))
    assert extended.latest("PropertyView").schema_id == 200
    assert extended.version("PropertyView", 1) is v1
    assert CATALOG.latest("PropertyView") is v1  # the original is unchanged


def test_a_duplicate_id_is_rejected_with_a_message_naming_both() -> None:
    entry = CATALOG.by_id(1)
    with pytest.raises(ValueError, match="schema id 1 is used twice"):
        Catalog(
            [
                entry,
                SchemaEntry.of(
                    1, "x.Other", 1, {"type": "record", "name": "x.Other", "fields": []}
                ),
            ]
        )


def test_an_optional_schema_file_may_be_absent_but_a_required_one_may_not(tmp_path: Path) -> None:
    (tmp_path / "a.avsc").write_text('{"type": "record", "name": "n.A", "fields": []}')
    spec = {
        "schemas": [
            {"id": 1, "subject": "n.A", "version": 1, "file": "a.avsc"},
            {"id": 2, "subject": "n.B", "version": 1, "file": "b.avsc", "optional": True},
        ]
    }
    (tmp_path / "catalog.json").write_text(json.dumps(spec))
    assert [e.schema_id for e in load_catalog(tmp_path / "catalog.json")] == [1]
    spec["schemas"][1]["optional"] = False
    (tmp_path / "catalog.json").write_text(json.dumps(spec))
    with pytest.raises(FileNotFoundError, match=r"b\.avsc"):
        load_catalog(tmp_path / "catalog.json")
