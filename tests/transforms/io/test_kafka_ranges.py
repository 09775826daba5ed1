"""Offset ranges of a bounded read, resolved on the real broker, and read back exactly."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer

from transforms.io.kafka_ranges import (
    RESOLVER_GROUP,
    KafkaRangeError,
    PartitionRange,
    PartitionShare,
    ReadKafkaRanges,
    client_config,
    read_range,
    resolve_ranges,
)


def test_client_config_keeps_bytes_and_never_auto_commits():
    config = client_config(
        {"bootstrap.servers": "h:1", "key.deserializer": "x", "enable.auto.commit": "true"}
    )
    assert config == {
        "bootstrap.servers": "h:1",
        "group.id": RESOLVER_GROUP,
        "enable.auto.commit": "false",
    }


def test_security_comes_from_the_properties_file_instead_of_its_java_form(tmp_path):
    from transforms.io.client_config import java_client_config, load_client_security

    path = tmp_path / "client.properties"
    path.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="app" password="s3cret";\n'
    )
    java_form = java_client_config(load_client_security(path))  # what the pipeline passes on
    assert "s3cret" not in str(java_form)
    config = client_config({"bootstrap.servers": "h:1", **java_form}, str(path))
    assert config == {
        "bootstrap.servers": "h:1",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "app",
        "sasl.password": "s3cret",
        "group.id": RESOLVER_GROUP,
        "enable.auto.commit": "false",
    }
    read = ReadKafkaRanges([], {"bootstrap.servers": "h:1", **java_form}, security_file=str(path))
    assert "s3cret" not in repr(read.__dict__)  # the job's definition holds the path only


def test_a_java_only_property_fails_at_construction_saying_which_names_to_use():
    with pytest.raises(KafkaRangeError, match=r"refused its configuration.*librdkafka's names"):
        ReadKafkaRanges([], {"bootstrap.servers": "127.0.0.1:9", "ssl.keystore.type": "JKS"})


def _produce(bootstrap: str, topic: str, partition: int, timestamps_ms: list[int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i, ts in enumerate(timestamps_ms):
        producer.produce(topic, key=f"k{i}".encode(), value=b"v", partition=partition, timestamp=ts)
    assert producer.flush(30) == 0


@pytest.mark.integration
def test_ranges_stop_at_the_first_record_at_or_after_the_stop_time_else_at_the_end(
    kafka_bootstrap, make_topic
):
    topic = make_topic(3)
    t0 = int(time.time() * 1000) - 60_000
    _produce(kafka_bootstrap, topic, 1, [t0, t0 + 1, t0 + 2])  # quiet: all before the stop
    _produce(kafka_bootstrap, topic, 2, [t0, t0 + 10, t0 + 20, t0 + 30])  # busy
    config = {"bootstrap.servers": kafka_bootstrap, "auto.offset.reset": "earliest"}

    assert resolve_ranges(config, [topic], stop_time_ms=t0 + 10) == [
        PartitionRange(topic, 0, 0, 0),  # empty
        PartitionRange(topic, 1, 0, 3),  # nothing at/after the stop time: to its end
        PartitionRange(topic, 2, 0, 1),  # before the record at the stop time
    ]
    assert resolve_ranges(config, [topic]) == [
        PartitionRange(topic, 0, 0, 0),
        PartitionRange(topic, 1, 0, 3),
        PartitionRange(topic, 2, 0, 4),
    ]
    assert resolve_ranges(config, [topic], start_time_ms=t0 + 2, stop_time_ms=t0 + 30) == [
        PartitionRange(topic, 0, 0, 0),
        PartitionRange(topic, 1, 2, 3),
        PartitionRange(topic, 2, 1, 3),
    ]
    latest = {**config, "auto.offset.reset": "latest"}
    assert [r.size for r in resolve_ranges(latest, [topic])] == [0, 0, 0]


def test_a_partition_share_holds_the_partitions_of_its_residues_and_refuses_bad_ones():
    first, rest = PartitionShare((0,), 4).check(), PartitionShare([1, 2, 3], 4).check()
    assert [p for p in range(9) if first.holds(p)] == [0, 4, 8]
    assert [p for p in range(9) if rest.holds(p)] == [1, 2, 3, 5, 6, 7]
    assert rest.residues == (1, 2, 3)
    for bad in (((4,), 4), ((), 2), ((1, 1), 2), ((0,), 0), ((-1,), 2)):
        with pytest.raises(ValueError, match="distinct residues"):
            PartitionShare(*bad).check()


@pytest.mark.integration
def test_shares_resolve_disjoint_ranges_that_together_are_the_whole_topic(
    kafka_bootstrap, make_topic
):
    topic = make_topic(3)
    t0 = int(time.time() * 1000) - 60_000
    for partition in range(3):
        _produce(kafka_bootstrap, topic, partition, [t0 + i for i in range(partition + 1)])
    config = {"bootstrap.servers": kafka_bootstrap, "auto.offset.reset": "earliest"}

    even = resolve_ranges(config, [topic], share=PartitionShare((0,), 2))
    odd = resolve_ranges(config, [topic], share=PartitionShare((1,), 2))
    assert even == [PartitionRange(topic, 0, 0, 1), PartitionRange(topic, 2, 0, 3)]
    assert odd == [PartitionRange(topic, 1, 0, 2)]
    assert sorted(even + odd) == resolve_ranges(config, [topic])
    # A share of no partition of this topic (3 partitions, residue 3 of 4) reads nothing.
    assert resolve_ranges(config, [topic], share=PartitionShare((3,), 4)) == []


@pytest.mark.integration
def test_a_consumer_group_starts_at_its_committed_offsets_and_commits_the_ranges_it_read(
    kafka_bootstrap, make_topic
):
    topic = make_topic(1)
    t0 = int(time.time() * 1000) - 60_000
    _produce(kafka_bootstrap, topic, 0, [t0 + i for i in range(5)])
    group = {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": f"ranges-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
    }
    (first,) = resolve_ranges(group, [topic], stop_time_ms=t0 + 3)
    assert first == PartitionRange(topic, 0, 0, 3)
    read = list(read_range(client_config(group), first, commit=True, idle_timeout_s=30))
    assert [(r.offset, r.timestamp_ms, r.key) for r in read] == [
        (i, t0 + i, f"k{i}".encode()) for i in range(3)
    ]
    assert resolve_ranges(group, [topic]) == [PartitionRange(topic, 0, 3, 5)]


@pytest.mark.integration
def test_a_missing_topic_fails_naming_it(kafka_bootstrap):
    missing = f"no-such-topic-{uuid.uuid4().hex[:8]}"
    config = {"bootstrap.servers": kafka_bootstrap, "allow.auto.create.topics": "false"}
    with pytest.raises(KafkaRangeError, match=f"topic '{missing}' does not exist"):
        resolve_ranges(config, [missing], timeout_s=10)
