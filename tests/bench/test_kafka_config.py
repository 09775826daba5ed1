"""bench.kafka_config: one configuration for every librdkafka client of the benchmarks, and the
--kafka_config_file flag (taken by the benchmarks on the user's Kafka, refused by those on their
own private stack)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bench import compare, kafka_config, scaling
from bench.latency import cli as latency_cli
from bench.latency_attribution import cli as attribution_cli

SECRET = "b3nch-Pa55"
SCRAM = (
    "security.protocol=SASL_SSL\n"
    "sasl.mechanism=SCRAM-SHA-512\n"
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
    f'username="bench" password="{SECRET}";\n'
    "ssl.truststore.type=PEM\n"
    "ssl.truststore.location=/etc/kafka/ca.pem\n"
)
BENCH = Path(kafka_config.__file__).parent


def _file(tmp_path: Path, text: str = SCRAM) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(text)
    return path


def test_a_client_gets_bootstrap_its_settings_and_the_file_security(tmp_path):
    security = kafka_config.security_settings(_file(tmp_path))
    assert security == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "bench",
        "sasl.password": SECRET,
        "ssl.ca.location": "/etc/kafka/ca.pem",
    }
    conf = kafka_config.client_conf("b:9093", security, {"group.id": "bench-x", "linger.ms": 5})
    assert conf == {"bootstrap.servers": "b:9093", "group.id": "bench-x", "linger.ms": 5} | security
    assert kafka_config.client_conf("b:9092") == {"bootstrap.servers": "b:9092"}
    assert kafka_config.security_settings(None) == {}


def test_a_tuning_setting_cannot_replace_a_security_one(tmp_path):
    security = kafka_config.security_settings(_file(tmp_path))
    with pytest.raises(ValueError, match=r"security\.protocol"):
        kafka_config.client_conf("b:9093", security, {"security.protocol": "PLAINTEXT"})


def test_a_bad_file_names_the_file_and_key_never_the_password(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        kafka_config.security_settings(tmp_path / "missing.properties")
    text = SCRAM.replace("ssl.truststore.type=PEM", "ssl.truststore.type=JKS")
    with pytest.raises(ValueError, match=r"ssl\.truststore\.type is JKS") as info:
        kafka_config.security_settings(_file(tmp_path, text))
    assert SECRET not in str(info.value)


def test_the_flag_wins_over_the_environment_and_goes_to_the_pipeline_by_path(tmp_path):
    parser = argparse.ArgumentParser()
    kafka_config.add_argument(parser)
    env = {"KAFKA_CONFIG_FILE": "/from/env.properties"}
    given = parser.parse_args(["--kafka_config_file=/given.properties"])
    assert kafka_config.config_file(given, env) == "/given.properties"
    assert kafka_config.config_file(parser.parse_args([]), env) == "/from/env.properties"
    assert kafka_config.config_file(parser.parse_args([]), {}) is None
    assert kafka_config.pipeline_flags("/given.properties") == [
        "--kafka_config_file=/given.properties"
    ]
    assert kafka_config.pipeline_flags(None) == []


@pytest.mark.parametrize("main", [compare.main, latency_cli.main, attribution_cli.main])
def test_the_private_stack_benchmarks_refuse_the_flag(main, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--kafka_config_file=/some/client.properties"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "private plaintext Kafka" in err and "bench.passthrough and bench.scaling" in err


def test_scaling_refuses_the_flag_for_latency_runs(capsys):
    with pytest.raises(SystemExit):
        scaling.main(["--latency", "--kafka_config_file=/some/client.properties"])
    assert "--latency runs bench.latency's plaintext clients" in capsys.readouterr().err


def test_every_bench_client_is_configured_by_the_shared_helper():
    # A client configured inline would connect without the file's security settings.
    inline = re.compile(r"(Producer|Consumer|AdminClient)\(\s*\{|[\"']bootstrap\.servers[\"']")
    offenders = [
        f"{path.relative_to(BENCH)}:{n}"
        for path in sorted(BENCH.rglob("*.py"))
        if path.name != "kafka_config.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if inline.search(line)
    ]
    assert offenders == []
