"""The broker side of security: its SASL_SSL listener properties and the storage format that
plants the SCRAM credentials before the first start."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from runners.security.config import BROKER_USER, SCRAM_MECHANISM, SecurityConfig
from runners.security.files import SecurityFiles, jaas_config


def broker_security_properties(
    files: SecurityFiles, config: SecurityConfig, broker_password: str
) -> dict[str, str]:
    """What a secured node adds to ``server.properties`` (listeners are set by the caller)."""
    supers = ["User:ANONYMOUS", f"User:{BROKER_USER}", *(f"User:{u}" for u in config.super_users)]
    return {
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas_config(
            BROKER_USER, broker_password
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(files.broker_keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca_cert),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        # The controller listener is PLAINTEXT (KAFKA-15513): its principal is ANONYMOUS.
        "super.users": ";".join(supers),
    }


def format_storage_secure(
    java: str,
    classpath: str,
    cluster_id: str,
    properties: Path,
    log_path: Path,
    passwords: Mapping[str, str],
    argfile_dir: Path,
    timeout_s: float = 120,
) -> None:
    """Format a node's storage with a SCRAM-SHA-512 credential for every user; the passwords go
    to the StorageTool in a 0600 ``@argfile`` (never in the process list), masked in the log."""
    from runners.kafka import format_storage

    secret: list[str] = []
    shown: list[str] = []
    for user, password in passwords.items():
        secret += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
        shown += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password=***]"]
    format_storage(
        java,
        classpath,
        cluster_id,
        properties,
        log_path,
        timeout_s,
        secret_args=secret,
        shown_args=shown,
        argfile_dir=argfile_dir,
    )
