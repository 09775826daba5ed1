"""The Confluent wire-format Avro codec: plain functions first, then the Beam transforms."""

from __future__ import annotations

import copy
import datetime
import io
import random
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
    MockSchemaRegistryClient,
)
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import schemaless_writer
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from schemas import CATALOG, PROPERTY_EVENT_ID, PROPERTY_VIEW_ID, SCHEMA_DIR, SchemaEntry
from tests.transforms.beam_results import counter, letter_summary
from tests.transforms.event_records import event_payload, view_payload
from transforms import metrics
from transforms.codec import (
    AvroDecoder,
    AvroEncoder,
    BadMagicByteError,
    CatalogSchemas,
    CorruptBodyError,
    DecodeAvro,
    DecodeError,
    EncodeAvro,
    EncodeError,
    FieldKey,
    IncompatibleSchemaError,
    MissingValueError,
    RegistrySchemas,
    TrailingBytesError,
    TruncatedHeaderError,
    UnknownSchemaIdError,
    decode_record,
    encode_record,
)
from transforms.dead_letter import DeadLetter
from transforms.types import Decoded, KafkaRecord

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in epoch ms


def property_event(**overrides: Any) -> dict[str, Any]:
    defaults = {"event_type": "PRICE_CHANGED", "square_feet": None, "event_time": T0}
    return event_payload(**{**defaults, **overrides})


def property_view(**overrides: Any) -> dict[str, Any]:
    return view_payload(**{"channel": "MOBILE", "event_time": T0, **overrides})


def kafka_record(value: bytes | None, offset: int = 0, key: bytes | None = b"p-1") -> KafkaRecord:
    return KafkaRecord(key, value, "property-events", 0, offset, T0)


def v2_definition(base: str = "PropertyEvent", extra_type: Any = None) -> dict[str, Any]:
    """A later version of ``base`` with one added optional field (null default)."""
    v1 = CATALOG.latest(base).definition
    extra = {"name": "listing_url", "type": extra_type or ["null", "string"], "default": None}
    return {**v1, "fields": [*v1["fields"], extra]}


# --- plain functions ----------------------------------------------------------------------------


def test_property_event_round_trips_with_int_millis_and_str_enums() -> None:
    value = encode_record(property_event(), "PropertyEvent")
    schema_id, decoded = decode_record(value, "PropertyEvent")
    assert schema_id == PROPERTY_EVENT_ID
    assert decoded == property_event()
    assert type(decoded["event_time"]) is int
    assert type(decoded["event_type"]) is str


def test_wire_header_is_magic_zero_and_big_endian_schema_id() -> None:
    assert encode_record(property_view(), "PropertyView")[:5] == b"\x00\x00\x00\x00\x02"
    assert encode_record(property_view(), "PropertyView", schema_id=0x01020304)[:5] == (
        b"\x00\x01\x02\x03\x04"
    )


def test_encoding_matches_a_plain_fastavro_write_of_the_contract_schema() -> None:
    """Dropping the logical type for speed must not change a single wire byte."""
    import io
    import json

    import fastavro

    contract = fastavro.parse_schema(
        json.loads((SCHEMA_DIR / "property_event.avsc").read_text(encoding="utf-8"))
    )
    buf = io.BytesIO()
    with_datetime = property_event(
        event_time=datetime.datetime.fromtimestamp(T0 / 1000, tz=datetime.UTC)
    )
    fastavro.schemaless_writer(buf, contract, with_datetime)
    assert encode_record(property_event(), "PropertyEvent")[5:] == buf.getvalue()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (None, MissingValueError),
        (b"", TruncatedHeaderError),
        (b"\x00\x00\x00\x01", TruncatedHeaderError),
        (b'{"event_id": "json, not avro"}', BadMagicByteError),
        (b"\x00\x00\x00\x03\xe7" + b"\x02x", UnknownSchemaIdError),
    ],
)
def test_malformed_framing_raises_the_named_decode_error(value: bytes | None, error: type) -> None:
    with pytest.raises(error):
        decode_record(value, "PropertyEvent")


def test_truncated_body_is_corrupt() -> None:
    value = encode_record(property_event(), "PropertyEvent")
    with pytest.raises(CorruptBodyError, match="schema id 1"):
        decode_record(value[:-4], "PropertyEvent")


def test_garbage_body_after_a_valid_header_is_corrupt() -> None:
    with pytest.raises(CorruptBodyError):
        decode_record(b"\x00\x00\x00\x00\x01" + b"\xff" * 12, "PropertyEvent")


def test_trailing_bytes_after_a_complete_record_are_rejected() -> None:
    value = encode_record(property_event(), "PropertyEvent")
    with pytest.raises(TrailingBytesError, match="1 bytes left"):
        decode_record(value + b"\x00", "PropertyEvent")


def test_a_view_is_never_read_as_a_property_event() -> None:
    value = encode_record(property_view(), "PropertyView")
    with pytest.raises(IncompatibleSchemaError, match=r"PropertyView.*cannot be read as"):
        decode_record(value, "PropertyEvent")


def test_v2_writer_with_an_added_optional_field_is_read_by_the_v1_reader() -> None:
    v1 = CATALOG.latest("PropertyEvent")
    v2 = SchemaEntry.of(110, v1.subject, 2, v2_definition())
    catalog = CATALOG.with_entry(v2)
    value = encode_record({**property_event(), "listing_url": "https://x/1"}, v2, catalog=catalog)
    assert value[:5] == b"\x00\x00\x00\x00\x6e"  # id 110
    decoder = AvroDecoder(v1, CatalogSchemas(catalog))
    assert decoder.decode(value) == (110, property_event())  # the new field is not in v1


def test_a_writer_with_a_changed_field_type_is_a_dead_letter_not_a_misparse() -> None:
    v1 = CATALOG.latest("PropertyEvent")
    changed = dict(v1.definition)
    changed["fields"] = [
        {"name": "price", "type": "string"} if f["name"] == "price" else f
        for f in v1.definition["fields"]
    ]
    bad = SchemaEntry.of(111, v1.subject, 2, changed)
    catalog = CATALOG.with_entry(bad)
    value = encode_record({**property_event(), "price": "750000"}, bad, catalog=catalog)
    with pytest.raises(IncompatibleSchemaError):
        AvroDecoder(v1, CatalogSchemas(catalog)).decode(value)


def test_a_new_enum_symbol_from_a_later_writer_is_a_dead_letter_only_where_it_is_used() -> None:
    v1 = CATALOG.latest("PropertyEvent")
    definition = copy.deepcopy(dict(v1.definition))
    for f in definition["fields"]:
        if f["name"] == "event_type":
            f["type"]["symbols"].append("LISTING_SOLD")
    v2 = SchemaEntry.of(120, v1.subject, 2, definition)
    catalog = CATALOG.with_entry(v2)
    decoder = AvroDecoder(v1, CatalogSchemas(catalog))
    sold = encode_record(property_event(event_type="LISTING_SOLD"), v2, catalog=catalog)
    with pytest.raises(IncompatibleSchemaError, match="LISTING_SOLD not found"):
        decoder.decode(sold)
    known = encode_record(property_event(), v2, catalog=catalog)
    assert decoder.decode(known) == (120, property_event())


def test_decode_errors_repr_is_the_bare_message() -> None:
    """Beam's exception handler keeps only type and repr; the repr becomes the dead-letter text."""
    assert repr(BadMagicByteError("first byte is 0x7b")) == "first byte is 0x7b"
    assert BadMagicByteError.error_type == "BadMagicByteError"


def test_encoder_rejects_a_missing_field_and_a_datetime_time() -> None:
    missing = property_event()
    del missing["price"]
    with pytest.raises(EncodeError, match="PropertyEvent"):
        encode_record(missing, "PropertyEvent")
    as_datetime = property_event(event_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    with pytest.raises(EncodeError):
        encode_record(as_datetime, "PropertyEvent")
    with pytest.raises(EncodeError):
        encode_record({**property_event(), "unexpected": 1}, "PropertyEvent")


def test_encoder_rejects_an_out_of_range_schema_id() -> None:
    with pytest.raises(ValueError, match="schema_id"):
        AvroEncoder(CATALOG.latest("Alert"), 2**31)


# --- registry path ------------------------------------------------------------------------------


class CountingMockRegistry(MockSchemaRegistryClient):
    """confluent-kafka's in-process mock registry, counting schema look-ups."""

    def __init__(self, conf: dict[str, Any]) -> None:
        super().__init__(conf)
        self.get_schema_calls = 0

    def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Schema:
        self.get_schema_calls += 1
        return super().get_schema(schema_id, *args, **kwargs)


def seeded_registry(conf: dict[str, Any]) -> CountingMockRegistry:
    """A mock registry with PropertyEvent v1 (id 1), PropertyView (id 2), PropertyEvent v2 (id 3).

    Module-level so a DoFn can pickle it as its client factory: each DoFn instance calls it in
    setup() and gets its own store (the mock is in-process only)."""
    client = CountingMockRegistry(conf)
    import json

    for subject, definition in [
        ("property.events.PropertyEvent", CATALOG.latest("PropertyEvent").definition),
        ("property.events.PropertyView", CATALOG.latest("PropertyView").definition),
        ("property.events.PropertyEvent", v2_definition()),
    ]:
        client.register_schema(subject, Schema(json.dumps(definition), "AVRO"))
    return client


def test_registry_is_asked_once_per_schema_id_not_once_per_record() -> None:
    client = seeded_registry({"url": "mock://codec-test"})
    decoder = AvroDecoder(CATALOG.latest("PropertyEvent"), RegistrySchemas(client))
    v1 = encode_record(property_event(), "PropertyEvent", schema_id=1)
    v2_entry = SchemaEntry.of(3, "property.events.PropertyEvent", 2, v2_definition())
    v2 = AvroEncoder(v2_entry).encode({**property_event(), "listing_url": None})
    for _ in range(100):
        assert decoder.decode(v1) == (1, property_event())
        assert decoder.decode(v2) == (3, property_event())
    assert client.get_schema_calls == 2


def test_registry_unknown_id_is_a_decode_error_asked_once() -> None:
    client = seeded_registry({"url": "mock://codec-test"})
    decoder = AvroDecoder(CATALOG.latest("PropertyEvent"), RegistrySchemas(client))
    for _ in range(10):
        with pytest.raises(UnknownSchemaIdError, match="id 77"):
            decoder.decode(b"\x00\x00\x00\x00\x4d\x02x")
    assert client.get_schema_calls == 1


class UnavailableRegistry(MockSchemaRegistryClient):
    def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Schema:
        raise SchemaRegistryError(503, 50003, "registry is down")


def test_registry_outage_propagates_instead_of_dead_lettering_good_records() -> None:
    client = UnavailableRegistry({"url": "mock://down"})
    decoder = AvroDecoder(CATALOG.latest("PropertyEvent"), RegistrySchemas(client))
    with pytest.raises(SchemaRegistryError):
        decoder.decode(encode_record(property_event(), "PropertyEvent"))


def test_a_non_avro_registry_schema_is_incompatible() -> None:
    client = MockSchemaRegistryClient({"url": "mock://json"})
    client.register_schema("x", Schema('{"type": "object"}', "JSON"))
    decoder = AvroDecoder(CATALOG.latest("PropertyEvent"), RegistrySchemas(client))
    with pytest.raises(IncompatibleSchemaError, match="JSON schema"):
        decoder.decode(b"\x00\x00\x00\x00\x01\x00")


# --- property-based ----------------------------------------------------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
_long = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_int = st.integers(min_value=-(2**31), max_value=2**31 - 1)
_float32 = st.floats(width=32, allow_nan=False)


def _symbols(name: str) -> Iterator[tuple[str, list[str]]]:
    definition = CATALOG.latest(name).definition
    for f in definition["fields"]:
        if isinstance(f["type"], dict) and f["type"].get("type") == "enum":
            yield f["name"], f["type"]["symbols"]


_event_enums = dict(_symbols("PropertyEvent"))
_view_enums = dict(_symbols("PropertyView"))

property_events = st.fixed_dictionaries(
    {
        "event_id": _text,
        "event_type": st.sampled_from(_event_enums["event_type"]),
        "property_id": _text,
        "zip_code": _text,
        "property_type": st.sampled_from(_event_enums["property_type"]),
        "price": _long,
        "bedrooms": st.none() | _int,
        "bathrooms": st.none() | _float32,
        "square_feet": st.none() | _int,
        "event_time": _long,
    }
)
property_views = st.fixed_dictionaries(
    {
        "view_id": _text,
        "user_id": _text,
        "property_id": _text,
        "channel": st.sampled_from(_view_enums["channel"]),
        "event_time": _long,
    }
)


@given(property_events)
def test_any_valid_property_event_round_trips(event: dict[str, Any]) -> None:
    assert decode_record(encode_record(event, "PropertyEvent"), "PropertyEvent") == (1, event)


@given(property_views)
def test_any_valid_property_view_round_trips(view: dict[str, Any]) -> None:
    assert decode_record(encode_record(view, "PropertyView"), "PropertyView") == (2, view)


def _mutate(valid: bytes, edits: list[tuple[int, int]], keep: int) -> bytes:
    """``valid`` with some bytes overwritten (``(position, byte)``) and cut to ``keep`` bytes (or
    extended by the leftover edits): near-valid input, which random bytes almost never are."""
    value = bytearray(valid)
    for position, byte in edits:
        if position < len(value):
            value[position] = byte
        else:
            value.append(byte)
    return bytes(value[: max(keep, 5)])


# Random bytes, random bodies behind a valid header (so the Avro reader itself is fuzzed), and
# valid records with a few bytes changed or cut (so decoding sometimes succeeds).
_framed = st.builds(
    lambda schema_id, body: b"\x00" + schema_id.to_bytes(4, "big") + body,
    st.sampled_from([PROPERTY_EVENT_ID, PROPERTY_VIEW_ID, 105, 9999]),
    st.binary(max_size=80),
)
_edits = st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=3)
_mutated = st.builds(
    _mutate,
    st.builds(encode_record, property_events, st.just("PropertyEvent"))
    | st.builds(encode_record, property_views, st.just("PropertyView")),
    _edits,
    st.integers(0, 200),
)
_any_bytes = st.binary(max_size=80) | _framed | _mutated


def _decodes(value: bytes, reader: str) -> bool:
    try:
        decode_record(value, reader)
    except DecodeError:
        return False
    return True


def _zigzag_varint(number: int) -> bytes:
    """Avro's encoding of an int or long, for any Python int (no range check: that is the point)."""
    zigzag = (number << 1) ^ (number >> (number.bit_length() + 1))
    out = bytearray()
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@pytest.mark.parametrize(
    ("field", "number"),
    [("square_feet", 2**31), ("bedrooms", -(2**31) - 1), ("square_feet", 2**40)],
)
def test_an_integer_beyond_its_avro_type_is_a_corrupt_body_not_a_record(field, number) -> None:
    """fastavro reads an int's varint into 64 bits; a record carrying a value too large for a
    32-bit int would pass validation and fail the job at the output's encoding (found by the fuzz
    test: square_feet 2 147 483 648)."""
    schema = CATALOG.latest("PropertyEvent").parsed
    fields = schema["fields"]
    at = [f["name"] for f in fields].index(field)
    record = event_payload()

    def body(number: int) -> bytes:
        """The valid record's bytes, with ``field`` written by hand as ``number``."""
        parts = []
        for part in (fields[:at], fields[at + 1 :]):
            fo = io.BytesIO()
            schemaless_writer(fo, {**schema, "fields": part}, record)
            parts.append(fo.getvalue())
        kind = fields[at]["type"]
        branch = _zigzag_varint(kind.index("int")) if isinstance(kind, list) else b""
        header = b"\x00" + PROPERTY_EVENT_ID.to_bytes(4, "big")
        return header + parts[0] + branch + _zigzag_varint(number) + parts[1]

    with pytest.raises(CorruptBodyError, match=f"{field} = {number} is outside"):
        decode_record(body(number), "PropertyEvent")
    # The same bytes with the field in range decode (the hand-made body itself is sound).
    assert decode_record(body(7), "PropertyEvent")[1] == {**record, field: 7}


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_any_bytes, st.sampled_from(["PropertyEvent", "PropertyView"]))
def test_any_bytes_decode_or_raise_a_decode_error_and_nothing_else(
    value: bytes, reader: str
) -> None:
    try:
        _, record = decode_record(value, reader)
    except DecodeError:
        return
    # Bytes that decode give a record of the reader's schema: written with it, it reads back the
    # same. (Not the same bytes: the writer schema may differ, varints need not be minimal.)
    reader_id = CATALOG.latest(reader).schema_id
    assert decode_record(encode_record(record, reader), reader) == (reader_id, record)


@pytest.mark.parametrize("reader", ["PropertyEvent", "PropertyView"])
def test_the_fuzz_input_reaches_both_outcomes(reader: str) -> None:
    """The fuzz test's two branches are both exercised: some generated inputs decode."""
    settings_ = settings(max_examples=2000, database=None)
    assert _decodes(find(_any_bytes, lambda v: _decodes(v, reader), settings=settings_), reader)
    assert not _decodes(
        find(_any_bytes, lambda v: not _decodes(v, reader), settings=settings_), reader
    )


# --- Beam: DecodeAvro / EncodeAvro --------------------------------------------------------------


def test_decode_avro_routes_every_malformed_class_to_dead_letters_with_original_bytes() -> None:
    good_event = encode_record(property_event(), "PropertyEvent")
    malformed = {
        "MissingValueError": None,
        "TruncatedHeaderError": b"\x00\x00",
        "BadMagicByteError": b"\x01" + good_event[1:],
        "UnknownSchemaIdError": b"\x00\x00\x00\x01\x00" + good_event[5:],
        "CorruptBodyError": good_event[:-3],
        "TrailingBytesError": good_event + b"\x01\x02",
        "IncompatibleSchemaError": encode_record(property_view(), "PropertyView"),
    }
    records = [kafka_record(good_event, offset=0)] + [
        kafka_record(value, offset=i + 1) for i, value in enumerate(malformed.values())
    ]
    expected_letters = [
        ("decode", error_type, i + 1, value)
        for i, (error_type, value) in enumerate(malformed.items())
    ]

    p = TestPipeline()
    result = p | "Records" >> beam.Create(records) | "DecodeEvents" >> DecodeAvro("PropertyEvent")
    assert_that(
        result.decoded,
        equal_to([Decoded(property_event(), 1, records[0])]),
        label="AssertDecoded",
    )
    summaries = result.dead_letters | "Summarize" >> beam.Map(letter_summary)
    assert_that(summaries, equal_to(expected_letters), label="AssertDeadLetters")
    run = p.run()
    run.wait_until_finish()

    assert counter(run, metrics.DECODED) == 1
    assert counter(run, metrics.DEAD_LETTERED) == len(malformed)
    assert counter(run, metrics.dead_lettered("decode")) == len(malformed)
    for error_type in malformed:
        assert counter(run, metrics.dead_lettered("decode", error_type)) == 1, error_type


def test_decode_avro_dead_letter_keeps_kafka_coordinates_and_reason() -> None:
    record = KafkaRecord(b"k-9", b"\x07garbage", "property-views", 3, 12345, T0 - 5)
    with TestPipeline() as p:
        result = p | "Records" >> beam.Create([record]) | "Decode" >> DecodeAvro("PropertyView")
        assert_that(result.decoded, equal_to([]), label="AssertNothingDecoded")
        assert_that(
            result.dead_letters,
            equal_to(
                [
                    DeadLetter(
                        stage="decode",
                        error_type="BadMagicByteError",
                        error_message="first byte is 0x07, not the magic byte 0x00",
                        key=b"k-9",
                        value=b"\x07garbage",
                        topic="property-views",
                        partition=3,
                        offset=12345,
                        record_timestamp_ms=T0 - 5,
                    )
                ]
            ),
            label="AssertDeadLetter",
        )


def test_decode_avro_random_bytes_all_end_in_dead_letters_never_fail_the_bundle() -> None:
    rng = random.Random(7)
    values = [rng.randbytes(rng.randint(0, 60)) for _ in range(300)]
    values += [b"\x00\x00\x00\x00\x01" + rng.randbytes(rng.randint(0, 60)) for _ in range(300)]
    records = [kafka_record(v, offset=i) for i, v in enumerate(values)]
    # None of these happens to be a valid PropertyEvent (checked without Beam).
    for v in values:
        with pytest.raises(DecodeError):
            decode_record(v, "PropertyEvent")

    with TestPipeline() as p:
        result = p | "Records" >> beam.Create(records) | "Decode" >> DecodeAvro("PropertyEvent")
        assert_that(result.decoded, equal_to([]), label="AssertNothingDecoded")
        offsets = result.dead_letters | "Offsets" >> beam.Map(_offset_of)
        assert_that(offsets, equal_to(list(range(len(records)))), label="AssertAllDeadLettered")


def _offset_of(letter: DeadLetter) -> int:
    return letter.offset


def test_decode_avro_with_a_registry_reads_v1_and_v2_writers_as_v1() -> None:
    v2_entry = SchemaEntry.of(3, "property.events.PropertyEvent", 2, v2_definition())
    v1_value = encode_record(property_event(), "PropertyEvent", schema_id=1)
    v2_value = AvroEncoder(v2_entry).encode({**property_event(event_id="e-2"), "listing_url": "u"})
    view_value = encode_record(property_view(), "PropertyView", schema_id=2)
    records = [kafka_record(v1_value, 0), kafka_record(v2_value, 1), kafka_record(view_value, 2)]

    with TestPipeline() as p:
        result = (
            p
            | "Records" >> beam.Create(records)
            | "Decode"
            >> DecodeAvro(
                "PropertyEvent",
                schema_registry_url="mock://decode-avro-test",
                registry_client_factory=seeded_registry,
            )
        )
        assert_that(
            result.decoded,
            equal_to(
                [
                    Decoded(property_event(), 1, records[0]),
                    Decoded(property_event(event_id="e-2"), 3, records[1]),
                ]
            ),
            label="AssertDecoded",
        )
        summaries = result.dead_letters | "Summarize" >> beam.Map(letter_summary)
        assert_that(
            summaries,
            equal_to([("decode", "IncompatibleSchemaError", 2, view_value)]),
            label="AssertDeadLetters",
        )


def test_decode_avro_threshold_fails_the_job_when_too_many_records_are_bad() -> None:
    good = encode_record(property_event(), "PropertyEvent")
    records = [kafka_record(good, 0)] + [kafka_record(b"bad", i) for i in range(1, 10)]
    p = TestPipeline()
    result = (
        p
        | "Records" >> beam.Create(records)
        | "Decode" >> DecodeAvro("PropertyEvent", threshold=0.5)
    )
    bad = result.dead_letters | "CountBad" >> beam.combiners.Count.Globally()
    assert_that(bad, equal_to([9]), label="AssertNineDeadLetters")
    with pytest.raises(Exception, match="exceeded threshold"):
        p.run().wait_until_finish()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reader_schema": "Nope"}, "reader_schema: no schema named 'Nope'"),
        ({"reader_schema": "PropertyEvent", "threshold": 0}, "threshold must be in"),
        (
            {"reader_schema": "PropertyEvent", "schema_registry_url": "localhost:8081"},
            "must start with http",
        ),
        (
            {"reader_schema": "PropertyEvent", "schema_registry_conf": {"timeout": 5}},
            "without schema_registry_url",
        ),
    ],
)
def test_decode_avro_rejects_bad_arguments_saying_what_to_fix(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DecodeAvro(**kwargs)


def test_encode_avro_writes_keyed_wire_format_that_decodes_back() -> None:
    counts = [
        {"zip_code": "94110", "count": 3, "last_event_time": T0},
        {"zip_code": "10001", "count": 1, "last_event_time": T0 + 1},
    ]
    p = TestPipeline()
    encoded = (
        p
        | "Counts" >> beam.Create(counts)
        | "Encode" >> EncodeAvro("ZipCount", None, FieldKey("zip_code"))
    )
    decoded = encoded | "DecodeBack" >> beam.Map(_decode_zip_count)
    assert_that(
        decoded,
        equal_to([(b"94110", 101, counts[0]), (b"10001", 101, counts[1])]),
        label="AssertRoundTrip",
    )
    run = p.run()
    run.wait_until_finish()
    assert counter(run, metrics.ENCODED) == 2
    assert counter(run, metrics.encoded("ZipCount")) == 2


def _decode_zip_count(kv: tuple[bytes, bytes]) -> tuple[bytes, int, dict[str, Any]]:
    key, value = kv
    schema_id, record = decode_record(value, "ZipCount")
    return key, schema_id, record


def test_encode_avro_fails_the_bundle_on_a_record_of_the_wrong_shape() -> None:
    p = TestPipeline()
    _ = (
        p
        | "Counts" >> beam.Create([{"zip_code": "94110"}])
        | "Encode" >> EncodeAvro("ZipCount", None, FieldKey("zip_code"))
    )
    with pytest.raises(Exception, match=r"does not fit property\.events\.ZipCount"):
        p.run().wait_until_finish()


def test_encode_avro_rejects_bad_arguments_saying_what_to_fix() -> None:
    with pytest.raises(ValueError, match="schema_name: no schema named"):
        EncodeAvro("Nope", None, FieldKey("x"))
    with pytest.raises(ValueError, match="key_fn must be callable"):
        EncodeAvro("ZipCount", None, "zip_code")  # type: ignore[arg-type]
