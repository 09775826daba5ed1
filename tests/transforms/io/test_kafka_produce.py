"""The librdkafka write: its settings, and records written to (and refused by) the real broker."""

from __future__ import annotations

import socket
import time
import uuid

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from confluent_kafka import Consumer

from transforms.io.kafka_produce import (
    KafkaProduceError,
    ProduceKafkaRecords,
    producer_config,
)


def test_producer_config_drops_consumer_settings_translates_java_names_and_adds_java_defaults():
    config = producer_config(
        {
            "bootstrap.servers": "h:1",
            "group.id": "g",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": "false",
            "max.request.size": "2097152",
            "linger.ms": "20",
            "acks": "1",
        }
    )
    assert config == {
        "bootstrap.servers": "h:1",
        "message.max.bytes": "2097152",
        "linger.ms": "20",
        "acks": "1",  # given: kept
        "enable.idempotence": "true",  # the Java client's default
    }


def test_security_comes_from_the_properties_file_and_the_transform_holds_no_secret(tmp_path):
    from transforms.io.client_config import java_client_config, load_client_security

    path = tmp_path / "client.properties"
    path.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="app" password="s3cret";\n'
    )
    java_form = java_client_config(load_client_security(path))
    properties = {"bootstrap.servers": "127.0.0.1:9", **java_form}
    config = producer_config(properties, str(path))
    assert config["sasl.username"] == "app" and config["sasl.password"] == "s3cret"
    assert config["security.protocol"] == "SASL_PLAINTEXT"
    write = ProduceKafkaRecords("t", properties, security_file=str(path))
    assert "s3cret" not in repr(write.__dict__)  # the job's definition holds the path only


def test_a_property_librdkafka_does_not_know_fails_at_construction_saying_which_names_to_use():
    with pytest.raises(KafkaProduceError, match=r"refused its configuration.*librdkafka's names"):
        ProduceKafkaRecords("t", {"bootstrap.servers": "127.0.0.1:9", "no.such.setting": "1"})


@pytest.mark.parametrize(
    ("topic", "properties", "message"),
    [
        ("", {"bootstrap.servers": "h:1"}, "non-empty topic"),
        ("t", {}, "bootstrap.servers"),
    ],
)
def test_bad_arguments_say_what_to_fix(topic, properties, message):
    with pytest.raises(ValueError, match=message):
        ProduceKafkaRecords(topic, properties)


def _read_all(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append((message.key(), message.value()))
        # Anything beyond ``count`` would be a duplicate: read a little longer.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                records.append((message.key(), message.value()))
    finally:
        consumer.close()
    return records


@pytest.mark.integration
def test_every_record_is_written_once_with_null_keys_and_tombstones(kafka_bootstrap, make_topic):
    topic = make_topic(3)
    elements = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(2_000)]
    elements += [(None, b"no key"), (b"deleted", None)]
    with TestPipeline() as p:
        _ = (
            p
            | beam.Create(elements)
            | ProduceKafkaRecords(topic, {"bootstrap.servers": kafka_bootstrap})
        )
    assert sorted(_read_all(kafka_bootstrap, topic, len(elements)), key=repr) == sorted(
        elements, key=repr
    )


@pytest.mark.integration
def test_a_record_the_producer_refuses_fails_the_run_naming_the_topic(kafka_bootstrap, make_topic):
    topic = make_topic(1)
    properties = {"bootstrap.servers": kafka_bootstrap, "max.request.size": "10000"}
    refused = rf"(?s){topic}.*(too large|MSG_SIZE_TOO_LARGE)"
    with pytest.raises(Exception, match=refused), TestPipeline() as p:
        _ = (
            p
            | beam.Create([(b"k", b"small"), (b"k", b"x" * 20_000)])
            | ProduceKafkaRecords(topic, properties)
        )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_records_that_cannot_be_delivered_fail_the_bundle_within_the_delivery_timeout():
    properties = {
        "bootstrap.servers": f"127.0.0.1:{_closed_port()}",  # nothing listens there
        "delivery.timeout.ms": "2000",
        "log_level": "0",
    }
    start = time.monotonic()
    failed = r"(?s)failed to send \d+ records to topic 'out'"
    with pytest.raises(Exception, match=failed), TestPipeline() as p:
        _ = p | beam.Create([(b"k", b"v")]) | ProduceKafkaRecords("out", properties)
    assert time.monotonic() - start < 120
