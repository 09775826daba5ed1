"""The secured variant of the local Kafka stack: TLS material, SCRAM users, broker settings, ACLs.

``python -m runners.local up --secure`` runs the broker with one client listener ``SASL_SSL``
(SCRAM-SHA-512 over TLS), the KRaft ``StandardAuthorizer`` with
``allow.everyone.if.no.acl.found=false``, users and ACLs from ``runners/security.toml``.

- TLS: a CA and a broker certificate (SAN ``localhost`` and ``127.0.0.1``) generated here with
  ``cryptography``; keys are PKCS#8 PEM, the only key format Kafka's PEM keystore parses.
- Users: one SCRAM-SHA-512 credential per user of ``security.toml`` plus ``broker`` (the
  inter-broker identity), each with a random password, written into the storage when it is
  formatted (``StorageTool format --add-scram``). The StorageTool takes credentials only as
  arguments, so the whole command line is given to ``java`` as an ``@argfile`` (0600, deleted
  after the run): the passwords never appear in ``ps``.
- The controller listener stays PLAINTEXT on loopback (SCRAM between controllers is not supported,
  KAFKA-15513); its principal ``User:ANONYMOUS`` is a super user. Any local process can therefore
  reach the controller port as a super user: acceptable for a loopback throwaway stack only.
- Secrets on disk: ``<cluster>/security/`` (0700) holds ``<user>.properties`` (0600 each), a
  standard Kafka client properties file per user with its password in ``sasl.jaas.config``, and
  the CA certificate ``ca.pem`` (public). These files are what ``--kafka_config_file`` and
  ``KAFKA_CONFIG_FILE`` take.
- ACLs are created through the Admin API (confluent-kafka) as ``admin`` once the broker is up;
  creating an existing ACL is a no-op, so every ``up`` makes sure they exist.

The package: ``config`` (security.toml), ``files`` (TLS, passwords, client files), ``broker``
(listener properties, storage format with credentials) and ``acls``.
"""

from __future__ import annotations

from runners.security.acls import acl_bindings, apply_acls
from runners.security.broker import broker_security_properties, format_storage_secure
from runners.security.config import (
    BROKER_USER,
    CLUSTER_RESOURCE,
    SCRAM_LOGIN,
    SCRAM_MECHANISM,
    SECURITY_TOML,
    AclSpec,
    SecurityConfig,
    User,
    load_security,
)
from runners.security.files import (
    SecurityFiles,
    client_properties_text,
    ensure_passwords,
    ensure_tls,
    jaas_config,
    prepare,
    write_client_properties,
    write_private,
)

__all__ = [
    "BROKER_USER",
    "CLUSTER_RESOURCE",
    "SCRAM_LOGIN",
    "SCRAM_MECHANISM",
    "SECURITY_TOML",
    "AclSpec",
    "SecurityConfig",
    "SecurityFiles",
    "User",
    "acl_bindings",
    "apply_acls",
    "broker_security_properties",
    "client_properties_text",
    "ensure_passwords",
    "ensure_tls",
    "format_storage_secure",
    "jaas_config",
    "load_security",
    "prepare",
    "write_client_properties",
    "write_private",
]
