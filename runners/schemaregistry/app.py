"""The schema registry (Starlette ASGI app): Confluent Schema Registry's REST API, the part a
producer registering writer schemas and a consumer resolving ids need.

Endpoints (bodies and errors as Confluent's: ``{"error_code": ..., "message": ...}``):
- ``POST /subjects/{subject}/versions`` with ``{"schema": "<Avro JSON>"}`` (``schemaType``
  ``AVRO`` or absent, no ``references``) → ``{"id": N}``. The same schema (same parsed JSON) gets
  the same id under every subject and is not a new version of a subject that has it. An invalid
  Avro schema → 422 (42201); another schema type or references → 422 (42201).
- ``POST /subjects/{subject}`` with the same body → the registered ``{subject, id, version,
  schema}`` of that schema under ``subject``, or 404 (40401 subject, 40403 schema).
- ``GET /schemas/ids/{id}`` → ``{"schema": "<Avro JSON>"}``; 404 (40403) when unknown.
- ``GET /subjects`` → the subjects; ``GET /subjects/{subject}/versions`` → its versions;
  ``GET /subjects/{subject}/versions/{version|latest}`` → ``{subject, id, version, schema}``.
- ``GET /healthz`` → 200 while the process serves.

No compatibility checks (Confluent's ``NONE`` level): the registry records what producers write,
and the pipeline's decoder decides per record whether its reader schema can read the writer's
(an incompatible writer's records are dead letters). The catalog's schemas (``schemas/``) are
registered at start with their catalog ids, so ids 1 and 2 mean what the wire contract says;
new schemas take ids after the catalog's highest. State lives in memory: a restart forgets what
was registered after start.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fastavro.schema import SchemaParseException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas import CATALOG, SchemaEntry, parse_for_python

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202


class RegistryError(Exception):
    """A request the registry refuses: an HTTP status and Confluent's error code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def canonical(schema_str: str) -> str:
    """``schema_str`` as one canonical JSON text (sorted keys, no spaces): what "the same schema"
    means here. Raises ``RegistryError`` (422) when it is not a valid Avro schema."""
    try:
        definition = json.loads(schema_str)
        parse_for_python(definition)
    except (ValueError, TypeError, SchemaParseException) as exc:
        raise RegistryError(422, INVALID_SCHEMA, f"Invalid schema: {exc}") from exc
    return json.dumps(definition, sort_keys=True, separators=(",", ":"))


@dataclass
class SchemaStore:
    """Schemas by id and subjects' versions (each version is a schema id)."""

    schemas: dict[int, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    next_id: int = 1

    @classmethod
    def seeded(cls, entries: Iterable[SchemaEntry] = CATALOG) -> SchemaStore:
        """A store holding ``entries`` at their ids and versions' order; new ids follow them."""
        store = cls()
        for entry in sorted(entries, key=lambda e: (e.subject, e.version)):
            text = canonical(json.dumps(entry.definition))
            store.schemas[entry.schema_id] = text
            store.ids.setdefault(text, entry.schema_id)
            store.subjects.setdefault(entry.subject, []).append(entry.schema_id)
        store.next_id = max(store.schemas, default=0) + 1
        return store

    def register(self, subject: str, schema_str: str) -> int:
        """The id of ``schema_str`` under ``subject``, registering it (a new version) if new."""
        text = canonical(schema_str)
        schema_id = self.ids.get(text)
        if schema_id is None:
            schema_id = self.next_id
            self.next_id += 1
            self.schemas[schema_id] = text
            self.ids[text] = schema_id
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def schema(self, schema_id: int) -> str:
        if schema_id not in self.schemas:
            raise RegistryError(404, SCHEMA_NOT_FOUND, f"Schema {schema_id} not found")
        return self.schemas[schema_id]

    def versions(self, subject: str) -> list[int]:
        if subject not in self.subjects:
            raise RegistryError(404, SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
        return self.subjects[subject]

    def version(self, subject: str, version: str) -> dict[str, Any]:
        """``{subject, id, version, schema}`` of ``version`` (a number from 1, or ``latest``)."""
        versions = self.versions(subject)
        if version == "latest":
            number = len(versions)
        else:
            try:
                number = int(version)
            except ValueError:
                raise RegistryError(
                    422, INVALID_VERSION, f"The specified version '{version}' is not valid"
                ) from None
            if not 1 <= number <= len(versions):
                raise RegistryError(404, VERSION_NOT_FOUND, f"Version {version} not found.")
        schema_id = versions[number - 1]
        return {
            "subject": subject,
            "id": schema_id,
            "version": number,
            "schema": self.schemas[schema_id],
        }

    def lookup(self, subject: str, schema_str: str) -> dict[str, Any]:
        versions = self.versions(subject)
        schema_id = self.ids.get(canonical(schema_str))
        if schema_id not in versions:
            raise RegistryError(404, SCHEMA_NOT_FOUND, "Schema not found")
        return self.version(subject, str(versions.index(schema_id) + 1))


async def _schema_str(request: Request) -> str:
    """The Avro schema text of a register/lookup body; ``RegistryError`` for anything else."""
    try:
        body = await request.json()
    except ValueError:
        raise RegistryError(422, INVALID_SCHEMA, "body must be a JSON object") from None
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise RegistryError(422, INVALID_SCHEMA, 'body must be {"schema": "<schema JSON>"}')
    if body.get("schemaType", "AVRO") != "AVRO":
        raise RegistryError(
            422, INVALID_SCHEMA, f"schemaType {body['schemaType']!r}: only AVRO is served"
        )
    if body.get("references"):
        raise RegistryError(422, INVALID_SCHEMA, "schema references are not supported")
    return body["schema"]


def create_app(store: SchemaStore) -> Starlette:
    """The ASGI app serving ``store``."""

    def answer(handler):
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(await handler(request))
            except RegistryError as exc:
                return JSONResponse(
                    {"error_code": exc.code, "message": str(exc)}, status_code=exc.status
                )

        return endpoint

    async def register(request: Request) -> Any:
        return {"id": store.register(request.path_params["subject"], await _schema_str(request))}

    async def lookup(request: Request) -> Any:
        return store.lookup(request.path_params["subject"], await _schema_str(request))

    async def schema_by_id(request: Request) -> Any:
        return {"schema": store.schema(request.path_params["schema_id"])}

    async def subjects(request: Request) -> Any:
        return sorted(store.subjects)

    async def versions(request: Request) -> Any:
        return list(range(1, len(store.versions(request.path_params["subject"])) + 1))

    async def version(request: Request) -> Any:
        return store.version(request.path_params["subject"], request.path_params["version"])

    async def healthz(request: Request) -> Any:
        return {"status": "ok", "schemas": len(store.schemas)}

    return Starlette(
        routes=[
            Route("/subjects/{subject}/versions", answer(register), methods=["POST"]),
            Route("/subjects/{subject}", answer(lookup), methods=["POST"]),
            Route("/schemas/ids/{schema_id:int}", answer(schema_by_id), methods=["GET"]),
            Route("/subjects", answer(subjects), methods=["GET"]),
            Route("/subjects/{subject}/versions", answer(versions), methods=["GET"]),
            Route("/subjects/{subject}/versions/{version}", answer(version), methods=["GET"]),
            Route("/healthz", answer(healthz), methods=["GET"]),
        ]
    )
