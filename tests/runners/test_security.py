"""The secured stack's configuration: users and ACLs, TLS material, broker settings (no broker)."""

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from runners import kafka, security
from transforms.io.client_config import librdkafka_config, load_client_security


def test_the_shipped_users_and_acls_load():
    config = security.load_security()
    assert {u.name for u in config.users} == {"admin", "pipeline", "producer", "tools"}
    assert config.super_users == ["admin"]
    pipeline = {
        (a.resource, name, op)
        for a in config.acls
        if a.user == "pipeline"
        for name in a.names
        for op in a.operations
    }
    assert ("topic", "property-events", "READ") in pipeline
    assert ("topic", "alerts", "WRITE") in pipeline
    assert ("topic", "alerts", "READ") not in pipeline  # it never reads its outputs
    assert len(security.acl_bindings(config)) == sum(
        len(a.names) * len(a.operations) for a in config.acls
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[user]]\nname = "broker"\n', "reserved for the broker"),
        (
            '[[user]]\nname = "a"\n[[acl]]\nuser = "b"\nresource = "topic"\n',
            r"is not a \[\[user\]\]",
        ),
        (
            '[[user]]\nname = "a"\n[[acl]]\nuser = "a"\nresource = "topic"\nnames = ["t"]\n'
            'operations = ["READS"]\n',
            "not Kafka ACL operations",
        ),
    ],
)
def test_bad_security_config_names_the_entry(tmp_path, text, message):
    path = tmp_path / "security.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        security.load_security(path)


def test_prepare_writes_private_pkcs8_tls_and_client_files(tmp_path):
    files = security.SecurityFiles(tmp_path / "security")
    config = security.load_security()
    passwords = security.prepare(files, config)
    assert set(passwords) == {"broker", "admin", "pipeline", "producer", "tools"}
    assert security.prepare(files, config) == passwords  # drawn once, reused
    assert stat.S_IMODE(os.stat(files.root).st_mode) == 0o700
    for path in (files.passwords, files.broker_keystore, files.client_properties("pipeline")):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pem = files.broker_keystore.read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8: what Kafka's PEM store reads
    load_pem_private_key(pem.encode(), None)
    cert = x509.load_pem_x509_certificates(pem.encode())[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    conf = librdkafka_config(load_client_security(files.client_properties("tools")))
    assert conf["sasl.username"] == "tools" and conf["sasl.password"] == passwords["tools"]
    assert conf["ssl.ca.location"] == str(files.ca_cert)


def test_secured_broker_properties(tmp_path):
    files = security.SecurityFiles(tmp_path)
    extra = security.broker_security_properties(files, security.load_security(), "pw")
    node = kafka.KafkaNode(1, 9092, 9093, tmp_path / "data")
    props = kafka.broker_properties(node, [node], security=extra)
    assert "listeners=SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n" in props
    assert "inter.broker.listener.name=SASL_SSL\n" in props
    assert "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL\n" in props
    assert "allow.everyone.if.no.acl.found=false\n" in props
    assert "super.users=User:ANONYMOUS;User:broker;User:admin\n" in props
