"""The project's Avro schemas and the local schema catalog, loaded and parsed once at import.

``catalog.json`` maps each schema to its subject (record-name strategy: the full record name), its
version and its id. Ids 1 and 2 are the wire contract's input schemas (``property_event.avsc`` and
``property_view.avsc``, byte-for-byte the contract's files); the project's own schemas take ids
from 100 up. The catalog is what the codec uses when no schema registry is configured.

Times: the schemas declare ``timestamp-millis`` (and may declare other time logical types), but the
project carries times as int epoch milliseconds everywhere. ``SchemaEntry.parsed`` is therefore
parsed with the time-family ``logicalType`` annotations removed, so fastavro reads and writes the
underlying ``long``/``int`` directly instead of converting to and from ``datetime`` (which would
also cost time on every record). The wire bytes are identical either way: a logical type only
annotates its underlying type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_DIR = Path(__file__).resolve().parent
CATALOG_FILE = SCHEMA_DIR / "catalog.json"

# Logical types whose Python form would be a datetime/date/time; the project keeps their raw
# int/long form. Other logical types (decimal, uuid) keep fastavro's conversion.
TIME_LOGICAL_TYPES = frozenset(
    {
        "date",
        "time-millis",
        "time-micros",
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
    }
)


class SchemaNotFoundError(LookupError):
    """No schema in the catalog has the requested id or name."""


def strip_time_logical_types(definition: Any) -> Any:
    """A copy of the schema JSON ``definition`` without time-family ``logicalType`` keys."""
    if isinstance(definition, dict):
        return {
            k: strip_time_logical_types(v)
            for k, v in definition.items()
            if not (k == "logicalType" and v in TIME_LOGICAL_TYPES)
        }
    if isinstance(definition, list):
        return [strip_time_logical_types(v) for v in definition]
    return definition


def parse_for_python(definition: Mapping[str, Any] | str) -> dict[str, Any]:
    """Parse a schema (JSON text or dict) the way the project reads and writes records: fastavro's
    parsed form, time logical types removed (times stay int). Do this once per schema, never per
    record."""
    if isinstance(definition, str):
        definition = json.loads(definition)
    return fastavro.parse_schema(strip_time_logical_types(definition))


def full_name(definition: Mapping[str, Any]) -> str:
    """The full name (namespace.name) of a named schema's JSON definition."""
    name = definition["name"]
    namespace = definition.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


@dataclass(frozen=True)
class SchemaEntry:
    """One schema of the catalog.

    ``definition`` is the schema JSON as written in the ``.avsc`` (logical types included);
    ``parsed`` its fastavro parsed form without time logical types (see the module docstring).
    """

    schema_id: int
    subject: str
    version: int
    name: str
    definition: Mapping[str, Any] = field(repr=False, compare=False)
    parsed: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def of(
        cls, schema_id: int, subject: str, version: int, definition: Mapping[str, Any]
    ) -> SchemaEntry:
        """An entry for ``definition``, parsed here (once)."""
        return cls(
            schema_id=schema_id,
            subject=subject,
            version=version,
            name=full_name(definition),
            definition=definition,
            parsed=parse_for_python(definition),
        )

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


class Catalog:
    """Schemas by id and by name (full or short); immutable. ``latest(name)`` is the highest
    version of that record name."""

    def __init__(self, entries: Iterable[SchemaEntry]) -> None:
        self._by_id: dict[int, SchemaEntry] = {}
        for entry in entries:
            if entry.schema_id in self._by_id:
                raise ValueError(
                    f"schema id {entry.schema_id} is used twice in the catalog "
                    f"({self._by_id[entry.schema_id].subject} and {entry.subject}); "
                    "give each schema its own id"
                )
            self._by_id[entry.schema_id] = entry

    def __iter__(self) -> Iterator[SchemaEntry]:
        return iter(sorted(self._by_id.values(), key=lambda e: e.schema_id))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, schema_id: object) -> bool:
        return schema_id in self._by_id

    def find(self, schema_id: int) -> SchemaEntry | None:
        """The entry with ``schema_id``, or None."""
        return self._by_id.get(schema_id)

    def by_id(self, schema_id: int) -> SchemaEntry:
        """The entry with ``schema_id``; ``SchemaNotFoundError`` if there is none."""
        entry = self._by_id.get(schema_id)
        if entry is None:
            raise SchemaNotFoundError(
                f"no schema with id {schema_id} in the catalog (ids: {sorted(self._by_id)})"
            )
        return entry

    def latest(self, name: str) -> SchemaEntry:
        """The highest version of the record ``name`` (full, e.g. ``property.events.Alert``, or
        short, e.g. ``Alert``); ``SchemaNotFoundError`` if there is none."""
        matches = [e for e in self._by_id.values() if name in (e.name, e.short_name)]
        if not matches:
            names = sorted({e.name for e in self._by_id.values()})
            raise SchemaNotFoundError(f"no schema named {name!r} in the catalog (names: {names})")
        return max(matches, key=lambda e: e.version)

    def version(self, name: str, version: int) -> SchemaEntry:
        """Version ``version`` of the record ``name`` (full or short); ``SchemaNotFoundError`` if
        the catalog has no such version."""
        for entry in self._by_id.values():
            if name in (entry.name, entry.short_name) and entry.version == version:
                return entry
        raise SchemaNotFoundError(f"no version {version} of {name!r} in the catalog")

    def with_entry(self, entry: SchemaEntry) -> Catalog:
        """A new catalog with ``entry`` added (e.g. a later version under a new id)."""
        return Catalog([*self._by_id.values(), entry])


def load_catalog(catalog_file: Path = CATALOG_FILE) -> Catalog:
    """Read ``catalog.json`` and parse every schema it lists. An entry marked ``optional`` whose
    file is absent is skipped (a schema another part of the project may not have written yet);
    any other missing file is an error."""
    spec = json.loads(catalog_file.read_text(encoding="utf-8"))
    entries = []
    for item in spec["schemas"]:
        path = catalog_file.parent / item["file"]
        if not path.exists():
            if item.get("optional", False):
                continue
            raise FileNotFoundError(f"{catalog_file} lists {path}, which does not exist")
        definition = json.loads(path.read_text(encoding="utf-8"))
        entries.append(SchemaEntry.of(item["id"], item["subject"], item["version"], definition))
    return Catalog(entries)


CATALOG: Catalog = load_catalog()

# Ids of the wire contract (``docs/contract.md``) and of the project's own schemas.
PROPERTY_EVENT_ID = 1
PROPERTY_VIEW_ID = 2
ENRICHED_PROPERTY_EVENT_ID = 100
ZIP_COUNT_ID = 101
PROPERTY_VIEW_COUNT_ID = 102
ALERT_ID = 103
LATE_RECORD_ID = 104
DEAD_LETTER_ID = 105
