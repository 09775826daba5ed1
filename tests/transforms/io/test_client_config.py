"""The one mapping from a Kafka client properties file to Java (KafkaIO) and librdkafka settings."""

from pathlib import Path

import pytest

from transforms.io.client_config import (
    FILE_PROVIDER_CLASS,
    ClientConfigError,
    client_security_from_env,
    java_client_config,
    librdkafka_config,
    load_client_security,
    parse_properties,
)

SECRET = "s3cr3t-Pa55"
SCRAM = (
    "security.protocol=SASL_SSL\n"
    "sasl.mechanism=SCRAM-SHA-512\n"
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
    f'    username="pipeline" password="{SECRET}";\n'
    "ssl.truststore.type=PEM\n"
    "ssl.truststore.location=/etc/kafka/ca.pem\n"
    "# a comment\n"
    "bootstrap.servers=broker:9093\n"
    "request.timeout.ms=30000\n"
)


def write(tmp_path: Path, text: str, name: str = "client.properties") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_properties_parsing_follows_java_rules():
    text = "a=1\nb : 2\nc 3\n! bang comment\nd=x\\\n  y\ne=back\\\\slash\nf=\\u0041\n"
    assert parse_properties(text) == {
        "a": "1",
        "b": "2",
        "c": "3",
        "d": "xy",
        "e": "back\\slash",
        "f": "A",
    }


def test_java_config_keeps_the_password_in_the_file(tmp_path):
    security = load_client_security(write(tmp_path, SCRAM))
    java = java_client_config(security)
    assert SECRET not in repr(java)
    assert java["sasl.jaas.config"] == f"${{beamsecretfile:{security.path}:sasl.jaas.config}}"
    assert java["config.providers"] == "beamsecretfile"
    assert java["config.providers.beamsecretfile.class"] == FILE_PROVIDER_CLASS
    assert java["security.protocol"] == "SASL_SSL"
    assert java["request.timeout.ms"] == "30000"
    assert "bootstrap.servers" not in java  # the pipeline's own flag sets it
    assert security.bootstrap_servers == "broker:9093"
    assert SECRET not in repr(security)


def test_java_config_keeps_existing_provider_references(tmp_path):
    text = (
        "config.providers=env\n"
        "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider\n"
        "sasl.mechanism=PLAIN\n"
        "sasl.jaas.config=${env:KAFKA_JAAS}\n"
    )
    java = java_client_config(load_client_security(write(tmp_path, text)))
    assert java["sasl.jaas.config"] == "${env:KAFKA_JAAS}"
    assert java["config.providers"] == "env"


def test_librdkafka_config_of_scram(tmp_path):
    conf = librdkafka_config(load_client_security(write(tmp_path, SCRAM)))
    assert conf == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "pipeline",
        "sasl.password": SECRET,
        "ssl.ca.location": "/etc/kafka/ca.pem",
    }


def test_librdkafka_resolves_file_and_env_references(tmp_path):
    secrets = write(
        tmp_path,
        f"jaas=org.apache.kafka.common.security.plain.PlainLoginModule "
        f'required username="key" password="{SECRET}";\n',
        "secrets.properties",
    )
    text = (
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
        f"sasl.jaas.config=${{file:{secrets}:jaas}}\n"
        "ssl.keystore.type=PKCS12\nssl.keystore.location=/k.p12\n"
        "ssl.keystore.password=${env:KS_PASS}\n"
    )
    conf = librdkafka_config(load_client_security(write(tmp_path, text)), env={"KS_PASS": "kspass"})
    assert conf["sasl.username"] == "key" and conf["sasl.password"] == SECRET
    assert conf["ssl.keystore.location"] == "/k.p12"
    assert conf["ssl.keystore.password"] == "kspass"


def test_librdkafka_maps_a_pem_keystore_to_certificate_and_key(tmp_path):
    text = (
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=/ca.pem\n"
        "ssl.keystore.type=PEM\nssl.keystore.location=/client.pem\n"
        "ssl.endpoint.identification.algorithm=\n"
    )
    conf = librdkafka_config(load_client_security(write(tmp_path, text)))
    assert conf == {
        "security.protocol": "SSL",
        "ssl.ca.location": "/ca.pem",
        "ssl.certificate.location": "/client.pem",
        "ssl.key.location": "/client.pem",
        "ssl.endpoint.identification.algorithm": "none",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ssl.truststore.location=/ts.jks\n", "read PEM CA certificates only"),
        (
            "sasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.scram."
            'ScramLoginModule required username="u" password="p";\n',
            "set sasl.mechanism to one of",
        ),
        (
            "sasl.mechanism=OAUTHBEARER\nsasl.jaas.config=org.apache.kafka.common.security."
            "oauthbearer.OAuthBearerLoginModule required;\n",
            "support SCRAM and PLAIN",
        ),
        ("ssl.cipher.suites=X\n", "ssl.cipher.suites has no librdkafka equivalent"),
        ("sasl.jaas.config=${env:NOPE_NOT_SET}\n", "NOPE_NOT_SET is not set"),
    ],
)
def test_librdkafka_refuses_what_it_cannot_honour(tmp_path, text, message):
    with pytest.raises(ClientConfigError, match=message) as info:
        librdkafka_config(load_client_security(write(tmp_path, text)), env={})
    assert 'p"' not in str(info.value)


def test_a_missing_file_says_what_to_give(tmp_path):
    with pytest.raises(ClientConfigError, match="does not exist: give the path"):
        load_client_security(tmp_path / "nope.properties")


def test_env_names_the_file(tmp_path):
    path = write(tmp_path, SCRAM)
    assert client_security_from_env({"KAFKA_CONFIG_FILE": str(path)}).path == path.resolve()
    assert client_security_from_env({}) is None
