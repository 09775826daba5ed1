"""The records of the simulated log, one builder per kind: valid event and view payloads, their
wire encoding, poison records of each class (what the pipeline must dead-letter) and oversize
events (valid, but too large to write once enriched)."""

from __future__ import annotations

import random
import struct
from typing import Any

from schemas import CATALOG, SchemaEntry
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate.spec import (
    CHANNELS,
    HOUR_MS,
    OVERSIZE,
    PlannedRecord,
    SimulationSpec,
    partition_for,
)
from transforms.codec import encode_record


def oversize_event(
    payload: dict[str, Any], event_id: str, spec: SimulationSpec, now_ms: int
) -> PlannedRecord:
    """A valid event whose value is ``spec.oversize_bytes`` long: its event id padded with
    ``x`` (Avro's length prefix grows with the string: count down to the exact size)."""
    pad = spec.oversize_bytes - len(encode_event({**payload, "event_id": event_id}))
    while True:
        padded = {**payload, "event_id": f"{event_id}-{'x' * (pad - 1)}"}
        value = encode_event(padded)
        if len(value) <= spec.oversize_bytes:
            break
        pad -= 1
    key = payload["property_id"].encode()
    return PlannedRecord(
        EVENTS_TOPIC,
        partition_for(key, spec.partitions),
        key,
        value,
        min(payload["event_time"], now_ms),
        OVERSIZE,
        padded,
    )


def _property_event_with(fields: list[dict[str, Any]]) -> dict[str, Any]:
    v1 = CATALOG.version("PropertyEvent", 1).definition
    return {**v1, "fields": fields}


_V1_FIELDS: list[dict[str, Any]] = list(CATALOG.version("PropertyEvent", 1).definition["fields"])
#: A compatible later PropertyEvent: one added optional field with a default. A v1 reader reads
#: its records as v1 (the added field is skipped).
PROPERTY_EVENT_V2: dict[str, Any] = _property_event_with(
    [*_V1_FIELDS, {"name": "listing_url", "type": ["null", "string"], "default": None}]
)
#: An incompatible PropertyEvent: ``price`` a string, which Avro cannot resolve to the v1
#: reader's ``long``: each of its records is a dead letter (``IncompatibleSchemaError``).
PROPERTY_EVENT_INCOMPATIBLE: dict[str, Any] = _property_event_with(
    [{**f, "type": "string"} if f["name"] == "price" else f for f in _V1_FIELDS]
)


def encode_event_v2(payload: dict[str, Any], schema_id: int) -> bytes:
    """``payload`` (a v1 PropertyEvent) written with ``PROPERTY_EVENT_V2`` under ``schema_id``,
    its added field set from the property id."""
    entry = SchemaEntry.of(schema_id, "property.events.PropertyEvent", 2, PROPERTY_EVENT_V2)
    url = f"https://listings.example/{payload['property_id']}"
    return encode_record({**payload, "listing_url": url}, entry)


def encode_event_incompatible(payload: dict[str, Any], schema_id: int) -> bytes:
    """``payload`` written with ``PROPERTY_EVENT_INCOMPATIBLE`` under ``schema_id``."""
    entry = SchemaEntry.of(
        schema_id, "property.events.PropertyEvent", 3, PROPERTY_EVENT_INCOMPATIBLE
    )
    return encode_record({**payload, "price": str(payload["price"])}, entry)


def encode_event(payload: dict[str, Any]) -> bytes:
    """A PropertyEvent in the wire format (schema id 1)."""
    return encode_record(payload, "PropertyEvent", 1)


def encode_view(payload: dict[str, Any]) -> bytes:
    """A PropertyView in the wire format (schema id 2)."""
    return encode_record(payload, "PropertyView", 2)


def event_payload(
    prop: dict[str, Any], etype: str, event_time: int, event_id: str, rng: random.Random
) -> dict[str, Any]:
    """The PropertyEvent payload of ``prop`` (a LAND property has no rooms or size)."""
    land = prop["type"] == "LAND"
    return {
        "event_id": event_id,
        "event_type": etype,
        "property_id": prop["property_id"],
        "zip_code": prop["zip_code"],
        "property_type": prop["type"],
        "price": prop["price"],
        "bedrooms": None if land else rng.randint(1, 6),
        "bathrooms": None if land else float(rng.choice((1, 1.5, 2, 2.5, 3, 4))),
        "square_feet": None if land else rng.randint(450, 5200),
        "event_time": event_time,
    }


def view_payload(
    user: str, property_id: str, event_time: int, view_id: str, rng: random.Random
) -> dict[str, Any]:
    """The PropertyView payload of ``user`` viewing ``property_id``."""
    return {
        "view_id": view_id,
        "user_id": user,
        "property_id": property_id,
        "channel": rng.choice(CHANNELS),
        "event_time": event_time,
    }


def poison_event(
    cls: str,
    prop: dict[str, Any],
    event_time: int,
    now_ms: int,
    event_id: str,
    rng: random.Random,
    spec: SimulationSpec,
) -> PlannedRecord:
    """A poison record of class ``cls`` (``POISON_EVENT_CLASSES``) for the events topic."""
    payload = event_payload(prop, "PRICE_CHANGED", event_time, event_id, rng)
    ts = event_time
    if cls == "null_value":
        value = None
    elif cls == "short":
        value = b"\x00\x00\x01"
    elif cls == "bad_magic":
        value = b"\x07" + encode_event(payload)[1:]
    elif cls == "unknown_schema_id":
        value = b"\x00" + struct.pack(">I", 9_999) + encode_event(payload)[5:]
    elif cls == "corrupt_body":
        value = encode_event(payload)[:9] + b"\xff\xff\xff\xff\xff"
    elif cls == "wrong_schema":
        value = encode_view(view_payload("U1", prop["property_id"], event_time, event_id, rng))
    elif cls == "invalid_zip":
        value = encode_event({**payload, "zip_code": "9A1"})
    elif cls == "invalid_price":
        value = encode_event({**payload, "price": rng.choice((0, -5, 2_000_000_000))})
    elif cls == "empty_id":
        value = encode_event({**payload, "event_id": ""})
    elif cls == "future_event_time":
        future = now_ms + 3 * HOUR_MS
        value = encode_event({**payload, "event_time": future})
        ts = now_ms  # the contract: the record timestamp is capped at the send time
    else:
        raise ValueError(f"unknown poison class {cls}")
    key = prop["property_id"].encode()
    return PlannedRecord(
        EVENTS_TOPIC, partition_for(key, spec.partitions), key, value, ts, f"poison:{cls}"
    )


def poison_view(
    cls: str,
    user: str,
    property_id: str,
    event_time: int,
    view_id: str,
    rng: random.Random,
    spec: SimulationSpec,
) -> PlannedRecord:
    """A poison record of class ``cls`` (``POISON_VIEW_CLASSES``) for the views topic."""
    payload = view_payload(user, property_id, event_time, view_id, rng)
    if cls == "null_value":
        value = None
    elif cls == "corrupt_body":
        value = encode_view(payload)[:7]
    elif cls == "empty_user_id":
        value = encode_view({**payload, "user_id": ""})
    else:
        raise ValueError(f"unknown poison class {cls}")
    key = user.encode()
    return PlannedRecord(
        VIEWS_TOPIC, partition_for(key, spec.partitions), key, value, event_time, f"poison:{cls}"
    )
