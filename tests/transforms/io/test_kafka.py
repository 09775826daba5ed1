"""Kafka IO wrappers without a broker: argument checks, and the element conversions on both sides.

Reading and writing through a real broker is covered by tests/integration/test_passthrough.py.
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam import coders
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.io.kafka import (
    KafkaHeaderRow,
    KafkaWriteRow,
    ReadKafkaRecords,
    WriteKafkaRecords,
    key_value_of,
    record_from_row,
    write_row_of,
)
from transforms.types import KafkaRecord

SERVERS = "localhost:9092"


def metadata_row(**overrides):
    """A Row shaped like KafkaIO's ``kafka_read_with_metadata`` output."""
    fields = dict(
        topic="property-events",
        partition=3,
        offset=42,
        timestamp=1_700_000_000_000,
        timestampTypeId=0,
        timestampTypeName="CreateTime",
        key=b"p-1",
        value=b"\x00\x00\x00\x00\x01payload",
        headers=[beam.Row(key="trace", value=b"abc"), beam.Row(key="empty", value=None)],
    )
    fields.update(overrides)
    return beam.Row(**fields)


def test_record_from_row_keeps_bytes_coordinates_timestamp_and_headers():
    assert record_from_row(metadata_row()) == KafkaRecord(
        key=b"p-1",
        value=b"\x00\x00\x00\x00\x01payload",
        topic="property-events",
        partition=3,
        offset=42,
        timestamp_ms=1_700_000_000_000,
        headers=(("trace", b"abc"), ("empty", None)),
    )


def test_record_from_row_without_headers_or_key_gives_empty_headers_and_none_key():
    record = record_from_row(metadata_row(headers=None, key=None, value=None))
    assert (record.key, record.value, record.headers) == (None, None, ())


def test_record_conversion_runs_as_a_labelled_beam_step():
    with TestPipeline() as p:
        records = (
            p
            | "Rows" >> beam.Create([metadata_row(offset=1), metadata_row(offset=2)])
            | "ToKafkaRecord" >> beam.Map(record_from_row)
        )
        assert_that(
            records | "Offsets" >> beam.Map(lambda r: (r.topic, r.offset)),
            equal_to([("property-events", 1), ("property-events", 2)]),
        )


def test_key_value_of_accepts_null_key_and_tombstone_and_rejects_str():
    assert key_value_of((None, b"v")) == (None, b"v")
    assert key_value_of((b"k", None)) == (b"k", None)
    with pytest.raises(TypeError, match="value must be bytes or None, got str"):
        key_value_of((b"k", "text"))
    with pytest.raises(TypeError, match="key must be bytes or None, got int"):
        key_value_of((7, b"v"))


def test_write_row_with_headers_round_trips_through_its_row_coder():
    row = write_row_of((b"k", b"v", [("trace", b"abc"), ("none", None)]))
    assert row == KafkaWriteRow(
        key=b"k",
        value=b"v",
        headers=[KafkaHeaderRow("trace", b"abc"), KafkaHeaderRow("none", None)],
    )
    coder = coders.registry.get_coder(KafkaWriteRow)
    assert isinstance(coder, coders.RowCoder)
    decoded = coder.decode(coder.encode(row))
    assert (decoded.key, decoded.value) == (b"k", b"v")
    assert [(h.key, h.value) for h in decoded.headers] == [("trace", b"abc"), ("none", None)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bootstrap_servers": ""}, "bootstrap_servers must be a non-empty"),
        ({"bootstrap_servers": "localhost"}, "is not 'host:port'"),
        ({"topics": "property-events"}, r"not 'name'"),
        ({"topics": []}, "topics must be a non-empty list"),
        ({"consumer_config": {"max.poll.records": 500}}, "must map str to str"),
        ({"consumer_config": {"value.deserializer": "x"}}, "owns that setting"),
        ({"consumer_config": {"bootstrap.servers": "other:9092"}}, "give the servers once"),
        ({"max_num_records": 0}, "max_num_records must be a positive int"),
        ({"max_read_time_s": -5}, "max_read_time_s must be a positive int"),
        ({"poll_timeout_s": 0}, "poll_timeout_s must be a positive int"),
        ({"poll_timeout_s": 0.5}, "poll_timeout_s must be a positive int"),
        ({"start_read_time_ms": -1}, "start_read_time_ms must be milliseconds"),
        ({"start_read_time_ms": 20, "stop_read_time_ms": 10}, "must be after"),
        ({"commit_offset_in_finalize": True}, r"set consumer_config\['group.id'\]"),
        ({"timestamp_policy": "EventTime"}, "timestamp_policy must be one of"),
        ({"expansion_service": "nowhere"}, "expansion_service must be 'host:port'"),
        ({"native_expansion_service": "nowhere"}, "at the Flink runner's version"),
        ({"native_expansion_service": "h:1", "poll_timeout_s": 1}, "no poll timeout"),
        ({"native_expansion_service": "h:1", "max_read_time_s": 5}, "unbounded"),
        ({"native_expansion_service": "h:1", "stop_at_current_end": True}, "unbounded"),
        ({"partition_share": ((0,), 2)}, "needs a read of resolved ranges"),
        ({"partition_share": ((0,), 2), "max_read_time_s": 5}, "--stop_read_time_ms or"),
        ({"partition_share": ((2,), 2), "stop_at_current_end": True}, "distinct residues"),
    ],
)
def test_read_rejects_bad_arguments_saying_what_to_fix(kwargs, message):
    args = {"bootstrap_servers": SERVERS, "topics": ["property-events"], **kwargs}
    with pytest.raises(ValueError, match=message):
        ReadKafkaRecords(**args)


def test_read_accepts_security_settings_unchanged():
    # Constructing is enough: the config is sent to Java as is (values are strings).
    ReadKafkaRecords(
        SERVERS,
        ["property-events"],
        consumer_config={
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
            'required username="u" password="p";',
            "ssl.truststore.location": "/etc/kafka/truststore.jks",
            "group.id": "g",
        },
        commit_offset_in_finalize=True,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"topic": ""}, "topic must be a non-empty topic name"),
        ({"producer_config": {"key.serializer": "x"}}, "owns that setting"),
        ({"producer_config": {"acks": 1}}, "must map str to str"),
        ({"bootstrap_servers": "a:1,b"}, "is not 'host:port'"),
    ],
)
def test_write_rejects_bad_arguments_saying_what_to_fix(kwargs, message):
    args = {"bootstrap_servers": SERVERS, "topic": "out", **kwargs}
    with pytest.raises(ValueError, match=message):
        WriteKafkaRecords(**args)
