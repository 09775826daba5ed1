"""Where a record's writer schema comes from: the local catalog (``CatalogSchemas``) or a
Confluent schema registry (``RegistrySchemas``), both behind ``WriterSchemas``."""

from __future__ import annotations

import json
from typing import Any, Protocol

from fastavro.schema import SchemaParseException

from schemas import Catalog, full_name, parse_for_python
from transforms.codec.errors import IncompatibleSchemaError, short_reason


class WriterSchemas(Protocol):
    """Where writer schemas come from: ``lookup(id)`` gives ``(full name, parsed schema)``, or
    None when the id is unknown. Called once per id per decoder, never per record."""

    def lookup(self, schema_id: int) -> tuple[str, dict[str, Any]] | None: ...


class CatalogSchemas:
    """Writer schemas from the local catalog (no registry configured)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def lookup(self, schema_id: int) -> tuple[str, dict[str, Any]] | None:
        entry = self._catalog.find(schema_id)
        return None if entry is None else (entry.name, entry.parsed)


class RegistrySchemas:
    """Writer schemas from a Confluent-compatible schema registry, through confluent-kafka's
    ``SchemaRegistryClient`` (which caches by id as well).

    A 404 means an unknown id (a dead letter). Any other registry failure (unreachable, 5xx,
    auth) is an infrastructure error and propagates: it fails the bundle, which the runner
    retries, instead of dead-lettering good records while the registry is down.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def lookup(self, schema_id: int) -> tuple[str, dict[str, Any]] | None:
        # Imported here: only the registry path needs confluent-kafka's registry module.
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise
        if schema.schema_type not in (None, "AVRO"):
            raise IncompatibleSchemaError(
                f"schema id {schema_id} is a {schema.schema_type} schema, not Avro"
            )
        if schema.references:
            raise IncompatibleSchemaError(
                f"schema id {schema_id} uses schema references, which this codec does not resolve"
            )
        try:
            definition = json.loads(schema.schema_str)
            parsed = parse_for_python(definition)
        except (ValueError, SchemaParseException) as exc:
            raise IncompatibleSchemaError(
                f"schema id {schema_id} is not a valid Avro schema: {short_reason(exc)}"
            ) from exc
        is_named = isinstance(definition, dict) and "name" in definition
        return (full_name(definition) if is_named else json.dumps(definition)), parsed
