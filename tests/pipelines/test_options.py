"""Kafka and passthrough options: parsed once into frozen configs, errors naming the flag."""

from __future__ import annotations

import dataclasses
import json

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import (
    KafkaConfig,
    OptionError,
    PassthroughConfig,
    is_bounded_run,
    parse_kafka_properties,
)

BASE = ["--bootstrap_servers=127.0.0.1:9092"]


def kafka_config(*argv: str) -> KafkaConfig:
    return KafkaConfig.from_options(PipelineOptions([*BASE, *argv]))


def test_kafka_properties_pass_through_to_consumer_and_producer_unchanged():
    config = kafka_config(
        "--consumer_group=property-pipeline",
        "--kafka_property=security.protocol=SASL_SSL",
        "--kafka_property",
        "sasl.mechanism=SCRAM-SHA-512",
        "--kafka_property=client.id=a=b",
    )
    security = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "client.id": "a=b",
    }
    assert config.consumer_config() == {
        **security,
        "auto.offset.reset": "earliest",
        "group.id": "property-pipeline",
        # Kafka's default (true) would commit polled positions before the records are written.
        "enable.auto.commit": "false",
    }
    assert config.producer_config() == security


def test_config_is_frozen():
    config = kafka_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.bootstrap_servers = "elsewhere:1"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.properties["x"] = "y"  # type: ignore[index]


def test_expansion_service_comes_from_beam_services():
    services = json.dumps({"sdks:java:io:expansion-service:shadowJar": "localhost:8097"})
    assert kafka_config(f"--beam_services={services}").expansion_service == "localhost:8097"


@pytest.mark.parametrize(
    ("argv", "bounded"),
    [
        ([], False),
        (["--max_records=10"], True),
        (["--max_read_time_s=30"], True),
        (["--stop_read_time_ms=1700000000000"], True),
        (["--backfill"], True),
        (["--start_read_time_ms=1700000000000"], False),
    ],
)
def test_a_run_is_bounded_exactly_when_it_has_a_stop_condition(argv, bounded):
    assert kafka_config(*argv).bounded is bounded
    assert is_bounded_run(PipelineOptions(argv)) is bounded


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--max_records=0"], "--max_records"),
        (["--max_read_time_s=-1"], "--max_read_time_s"),
        (["--kafka_poll_timeout_s=0"], "--kafka_poll_timeout_s"),
        (["--stop_read_time_ms=-5"], "--stop_read_time_ms"),
        (["--start_read_time_ms=20", "--stop_read_time_ms=10"], "--stop_read_time_ms"),
        (["--backfill", "--stop_read_time_ms=10"], "--backfill.*--stop_read_time_ms"),
        (["--backfill", "--max_records=10"], "--backfill.*--max_records"),
        (["--kafka_property=novalue"], "--kafka_property"),
        (["--kafka_property=group.id=g"], "--consumer_group"),
        (["--kafka_property=bootstrap.servers=x:1"], "--bootstrap_servers"),
        (["--kafka_property=sasl.jaas.config=X required;"], "--kafka_config_file"),
        (["--kafka_property=ssl.truststore.password=p"], "--kafka_config_file"),
        (["--kafka_config_file=/nonexistent/client.properties"], "does not exist"),
    ],
)
def test_bad_options_raise_an_error_naming_the_flag(argv, flag):
    with pytest.raises(OptionError, match=flag):
        kafka_config(*argv)


def test_kafka_poll_timeout_is_passed_through_in_whole_seconds():
    assert kafka_config().poll_timeout_s is None  # Beam's default (2 s) then applies
    assert kafka_config("--kafka_poll_timeout_s=1").poll_timeout_s == 1


def test_a_record_count_read_refuses_a_poll_timeout_and_says_why():
    with pytest.raises(OptionError, match=r"--max_records and --kafka_poll_timeout_s.*legacy"):
        kafka_config("--max_records=10", "--kafka_poll_timeout_s=1")


def test_missing_bootstrap_servers_says_how_to_get_one():
    with pytest.raises(OptionError, match=r"--bootstrap_servers is required.*runners.local up"):
        KafkaConfig.from_options(PipelineOptions([]))


def test_later_kafka_property_wins():
    assert parse_kafka_properties(["acks=1", "acks=all"]) == {"acks": "all"}


def test_passthrough_needs_two_distinct_topics():
    with pytest.raises(OptionError, match="--output_topic is required"):
        PassthroughConfig.from_options(PipelineOptions([*BASE, "--input_topic=a"]))
    with pytest.raises(OptionError, match="read its own output"):
        PassthroughConfig.from_options(
            PipelineOptions([*BASE, "--input_topic=a", "--output_topic=a"])
        )
    config = PassthroughConfig.from_options(
        PipelineOptions([*BASE, "--input_topic=a", "--output_topic=b"])
    )
    assert (config.input_topic, config.output_topic) == ("a", "b")


def test_commit_offsets_is_refused_in_a_streaming_flink_run():
    from pipelines.launch import check_flink_restart_options

    with pytest.raises(OptionError, match=r"--commit_offsets .*State backend must be locked"):
        check_flink_restart_options(
            ["--runner=FlinkRunner", "--streaming", "--consumer_group=g", "--commit_offsets"]
        )
    # Batch on Flink keeps it; Prism is checked on its own (below).
    check_flink_restart_options(["--runner=FlinkRunner", "--consumer_group=g", "--commit_offsets"])
    check_flink_restart_options(["--runner=PrismRunner", "--streaming", "--commit_offsets"])


def test_commit_offsets_is_refused_on_prism_which_lacks_stable_input():
    from pipelines.launch import check_prism_restart_options

    with pytest.raises(OptionError, match=r"--commit_offsets does not work on Prism.*stable input"):
        check_prism_restart_options(
            ["--runner=PrismRunner", "--streaming", "--consumer_group=g", "--commit_offsets"]
        )
    check_prism_restart_options(["--runner=PrismRunner", "--consumer_group=g"])
    check_prism_restart_options(["--runner=FlinkRunner", "--consumer_group=g", "--commit_offsets"])


def test_savepoint_path_is_refused_on_an_embedded_flink_and_kept_for_a_cluster():
    from pipelines.launch import check_flink_restart_options

    base = ["--runner=FlinkRunner", "--streaming", "--savepoint_path=file:/tmp/sp"]
    with pytest.raises(OptionError, match=r"--savepoint_path is ignored .* embedded Flink"):
        check_flink_restart_options([*base, "--flink_master=[local]"])
    with pytest.raises(OptionError, match="--savepoint_path"):
        check_flink_restart_options(
            [*base, "--job_endpoint=localhost:8099"], embedded_master=lambda _e: True
        )
    check_flink_restart_options([*base, "--flink_master=localhost:8081"])
    check_flink_restart_options(
        [*base, "--job_endpoint=localhost:8099"], embedded_master=lambda _e: False
    )


SECRET = "pa55-w0rd"
CLIENT_FILE = (
    "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
    f'username="pipeline" password="{SECRET}";\n'
    "ssl.truststore.type=PEM\nssl.truststore.location=/ca.pem\n"
)


def test_kafka_config_file_gives_every_client_its_settings_without_the_secret(tmp_path):
    path = tmp_path / "client.properties"
    path.write_text(CLIENT_FILE)
    config = kafka_config(f"--kafka_config_file={path}", "--kafka_property=acks=all")
    assert config.config_file == str(path.resolve())
    for client in (config.consumer_config(), config.producer_config()):
        assert client["security.protocol"] == "SASL_SSL"
        assert client["ssl.truststore.location"] == "/ca.pem"
        assert client["sasl.jaas.config"].startswith("${beamsecretfile:")
        assert client["acks"] == "all"
        assert SECRET not in repr(client)
    assert SECRET not in repr(config)


def test_a_setting_given_in_the_file_and_as_a_property_is_refused(tmp_path):
    path = tmp_path / "client.properties"
    path.write_text(CLIENT_FILE)
    with pytest.raises(OptionError, match="give each setting once"):
        kafka_config(f"--kafka_config_file={path}", "--kafka_property=sasl.mechanism=PLAIN")


def test_the_largest_record_to_write_is_the_producers_max_request_size():
    assert KafkaConfig.from_options(PipelineOptions(BASE)).max_record_bytes == 1_048_576
    given = KafkaConfig.from_options(
        PipelineOptions([*BASE, "--kafka_property=max.request.size=2097152"])
    )
    assert given.max_record_bytes == 2_097_152
    with pytest.raises(OptionError, match=r"--kafka_property max\.request\.size must be a number"):
        KafkaConfig.from_options(PipelineOptions([*BASE, "--kafka_property=max.request.size=1MB"]))


NATIVE = ["--runner=FlinkRunner", "--kafka_read=native"]
SERVICE = "--kafka_native_expansion_service=localhost:8096"


def test_the_native_read_takes_its_expansion_service_from_its_flag():
    assert kafka_config().native_expansion_service is None
    assert kafka_config(*NATIVE, SERVICE).native_expansion_service == "localhost:8096"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (NATIVE, r"runners.local up flink-expansion-service"),
        (["--runner=PrismRunner", "--kafka_read=native", SERVICE], r"Flink runner only.*Prism"),
        ([*NATIVE, SERVICE, "--max_read_time_s=5"], r"streaming reads"),
        ([*NATIVE, SERVICE, "--backfill"], r"streaming reads"),
        ([*NATIVE, SERVICE, "--kafka_poll_timeout_s=1"], r"no poll timeout"),
        ([*NATIVE, "--kafka_native_expansion_service=nowhere"], r"'host:port'"),
        ([SERVICE], r"--kafka_read=native"),
    ],
)
def test_the_native_read_refuses_what_it_cannot_do_saying_what_to_fix(argv, message):
    with pytest.raises(OptionError, match=message):
        kafka_config(*argv)


@pytest.mark.parametrize(
    ("argv", "write"),
    [
        ([], "java"),  # streaming: Beam's Java write
        (["--backfill"], "librdkafka"),
        (["--stop_read_time_ms=1700000000000"], "librdkafka"),
        (["--max_read_time_s=5"], "java"),  # Beam's Java read: Java runs anyway
        (["--backfill", "--kafka_write=java"], "java"),
        (["--kafka_write=librdkafka"], "librdkafka"),
    ],
)
def test_a_range_read_run_writes_with_librdkafka_any_other_with_java_unless_told(argv, write):
    assert kafka_config(*argv).write == write


def test_the_librdkafka_write_sends_what_the_size_check_lets_through():
    from pipelines.kafka_io import write_topic
    from transforms.io.kafka_produce import ProduceKafkaRecords, producer_config

    larger = "--kafka_property=max.request.size=2097152"
    for argv, limit in (([], "1048576"), ([larger], "2097152")):
        write = write_topic(kafka_config("--backfill", *argv), "out")
        assert isinstance(write, ProduceKafkaRecords)
        # librdkafka's own default (1 000 000) would refuse records the check lets through.
        assert producer_config(write._properties)["message.max.bytes"] == limit
