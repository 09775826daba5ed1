"""The local schema registry as a real process of the stack, driven by confluent-kafka's
``SchemaRegistryClient`` (the client the pipeline's decoder uses): the catalog's schemas at their
ids, registration, versions, Confluent's error codes, and the decoder reading through it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import CATALOG, SchemaEntry
from tools.simulate.records import PROPERTY_EVENT_INCOMPATIBLE, PROPERTY_EVENT_V2
from transforms.codec import IncompatibleSchemaError, encode_record
from transforms.codec.avro import AvroDecoder
from transforms.codec.writers import RegistrySchemas

pytestmark = pytest.mark.integration

SUBJECT = "property.events.PropertyEvent"
EVENT = {
    "event_id": "e-1",
    "event_type": "PRICE_CHANGED",
    "property_id": "p-1",
    "zip_code": "10001",
    "property_type": "CONDO",
    "price": 310_000,
    "bedrooms": 2,
    "bathrooms": 1.5,
    "square_feet": 900,
    "event_time": 1_795_800_000_000,
}


@pytest.fixture
def client(schema_registry: str) -> Iterator[SchemaRegistryClient]:
    client = SchemaRegistryClient({"url": schema_registry})
    yield client
    client.close()


def avro(definition: object) -> Schema:
    return Schema(json.dumps(definition), "AVRO")


def test_the_catalog_schemas_are_served_at_their_catalog_ids(client) -> None:
    for entry in CATALOG:
        assert json.loads(client.get_schema(entry.schema_id).schema_str) == entry.definition
    assert set(client.get_subjects()) >= {e.subject for e in CATALOG}


def test_a_new_schema_takes_an_id_after_the_catalog_and_the_same_schema_keeps_it(client) -> None:
    schema_id = client.register_schema(SUBJECT, avro(PROPERTY_EVENT_V2))
    assert schema_id > max(e.schema_id for e in CATALOG)
    assert client.register_schema(SUBJECT, avro(PROPERTY_EVENT_V2)) == schema_id
    registered = client.lookup_schema(SUBJECT, avro(PROPERTY_EVENT_V2))
    assert registered.schema_id == schema_id
    versions = client.get_versions(SUBJECT)
    assert versions == list(range(1, len(versions) + 1)) and registered.version in versions
    assert client.get_version(SUBJECT, 1).schema_id == 1
    assert json.loads(client.get_schema(schema_id).schema_str) == PROPERTY_EVENT_V2


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        (lambda c: c.get_schema(987_654), 404, 40403),
        (lambda c: c.get_versions("no.such.Subject"), 404, 40401),
        (lambda c: c.get_version(SUBJECT, 9_999), 404, 40402),
        (lambda c: c.register_schema("x", Schema('{"type": "recrd"}', "AVRO")), 422, 42201),
        (lambda c: c.register_schema("x", Schema('{"type": "object"}', "JSON")), 422, 42201),
    ],
)
def test_errors_carry_confluents_status_and_code(client, call, status, code) -> None:
    with pytest.raises(SchemaRegistryError) as info:
        call(client)
    assert (info.value.http_status_code, info.value.error_code) == (status, code)


def test_the_v1_reader_reads_v2_writers_through_the_registry_and_refuses_incompatible_ones(
    client,
) -> None:
    v2_id = client.register_schema(SUBJECT, avro(PROPERTY_EVENT_V2))
    bad_id = client.register_schema(SUBJECT, avro(PROPERTY_EVENT_INCOMPATIBLE))
    v2 = SchemaEntry.of(v2_id, SUBJECT, 2, PROPERTY_EVENT_V2)
    bad = SchemaEntry.of(bad_id, SUBJECT, 3, PROPERTY_EVENT_INCOMPATIBLE)
    decoder = AvroDecoder(CATALOG.version("PropertyEvent", 1), RegistrySchemas(client))
    assert decoder.decode(encode_record(EVENT, "PropertyEvent", 1)) == (1, EVENT)
    assert decoder.decode(encode_record({**EVENT, "listing_url": "u"}, v2)) == (v2_id, EVENT)
    with pytest.raises(IncompatibleSchemaError, match=f"writer schema id {bad_id}"):
        decoder.decode(encode_record({**EVENT, "price": "310000"}, bad))
