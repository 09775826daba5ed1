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
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SECURITY_TOML = Path(__file__).resolve().parent / "security.toml"
SCRAM_MECHANISM = "SCRAM-SHA-512"
BROKER_USER = "broker"
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
CLUSTER_RESOURCE = "kafka-cluster"
_RESOURCES = ("topic", "group", "cluster")
_PATTERNS = ("literal", "prefixed")


# ---------------------------------------------------------------------------------------------
# Configuration (security.toml)


@dataclass(frozen=True)
class User:
    name: str
    super_user: bool = False


@dataclass(frozen=True)
class AclSpec:
    """ALLOW ``operations`` on ``names`` of ``resource`` to ``User:<user>``, from any host."""

    user: str
    resource: str
    names: tuple[str, ...]
    operations: tuple[str, ...]
    pattern: str = "literal"


@dataclass(frozen=True)
class SecurityConfig:
    users: tuple[User, ...]
    acls: tuple[AclSpec, ...]

    @property
    def super_users(self) -> list[str]:
        return [u.name for u in self.users if u.super_user]


def load_security(path: Path = SECURITY_TOML) -> SecurityConfig:
    """Users and ACLs of ``path``; ``ValueError`` naming the entry when one is wrong."""
    from confluent_kafka.admin import AclOperation

    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    users = []
    for i, table in enumerate(data.get("user", [])):
        unknown = set(table) - {"name", "super_user"}
        if unknown or not table.get("name"):
            raise ValueError(f"{path}: user #{i + 1} needs a name; unknown keys {sorted(unknown)}")
        if table["name"] == BROKER_USER:
            raise ValueError(f"{path}: the user name {BROKER_USER!r} is reserved for the broker")
        users.append(User(table["name"], bool(table.get("super_user", False))))
    names = {u.name for u in users}
    acls = []
    for i, table in enumerate(data.get("acl", [])):
        where = f"{path}: acl #{i + 1}"
        unknown = set(table) - {"user", "resource", "names", "pattern", "operations"}
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}")
        if table.get("user") not in names:
            raise ValueError(f"{where}: user {table.get('user')!r} is not a [[user]] of the file")
        if table.get("resource") not in _RESOURCES:
            raise ValueError(f"{where}: resource must be one of {_RESOURCES}")
        pattern = table.get("pattern", "literal")
        if pattern not in _PATTERNS:
            raise ValueError(f"{where}: pattern must be one of {_PATTERNS}")
        ops = tuple(table.get("operations", ()))
        bad = [op for op in ops if op not in AclOperation.__members__]
        if not ops or bad:
            raise ValueError(
                f"{where}: operations {bad or ops} are not Kafka ACL operations"
                f" ({', '.join(AclOperation.__members__)})"
            )
        acl_names = tuple(table.get("names", ()))
        if not acl_names:
            raise ValueError(f"{where}: names is empty")
        acls.append(AclSpec(table["user"], table["resource"], acl_names, ops, pattern))
    return SecurityConfig(tuple(users), tuple(acls))


# ---------------------------------------------------------------------------------------------
# Files of one secured cluster


@dataclass(frozen=True)
class SecurityFiles:
    """Where the secured cluster keeps its TLS material and credentials."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca-key.pem"

    @property
    def broker_keystore(self) -> Path:
        """The broker's PKCS#8 key followed by its certificate chain (Kafka's PEM keystore)."""
        return self.root / "broker-keystore.pem"

    @property
    def passwords(self) -> Path:
        return self.root / "passwords.toml"

    def client_properties(self, user: str) -> Path:
        return self.root / f"{user}.properties"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file that only its owner can read (created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def ensure_tls(files: SecurityFiles, host: str = "127.0.0.1") -> None:
    """Create the CA and the broker certificate unless they exist (10 years, RSA 2048)."""
    if files.ca_cert.exists() and files.broker_keystore.exists():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=3650)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "property-streams local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def pkcs8(k: rsa.RSAPrivateKey) -> str:
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def pem(c: x509.Certificate) -> str:
        return c.public_bytes(serialization.Encoding.PEM).decode()

    write_private(files.ca_key, pkcs8(ca_key))
    write_private(files.broker_keystore, pkcs8(key) + pem(cert) + pem(ca_cert))
    files.ca_cert.write_text(pem(ca_cert))


def ensure_passwords(files: SecurityFiles, config: SecurityConfig) -> dict[str, str]:
    """user → password, drawn once per user (kept in a 0600 file) and reused afterwards."""
    have: dict[str, str] = {}
    if files.passwords.exists():
        with open(files.passwords, "rb") as fh:
            have = dict(tomllib.load(fh))
    wanted = [BROKER_USER, *(u.name for u in config.users)]
    if all(u in have for u in wanted):
        return have
    for user in wanted:
        have.setdefault(user, secrets.token_urlsafe(24))
    write_private(files.passwords, "".join(f'{u} = "{p}"\n' for u, p in have.items()))
    return have


def jaas_config(user: str, password: str) -> str:
    """``sasl.jaas.config`` of a SCRAM client (token_urlsafe passwords need no escaping)."""
    return f'{SCRAM_LOGIN} required username="{user}" password="{password}";'


def client_properties_text(user: str, password: str, ca_cert: Path) -> str:
    """A standard Kafka client properties file for ``user`` against the secured stack."""
    return (
        f"# Kafka client settings of user {user!r} for the secured local stack. Secret: 0600.\n"
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanism={SCRAM_MECHANISM}\n"
        f"sasl.jaas.config={jaas_config(user, password)}\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={ca_cert}\n"
    )


def write_client_properties(files: SecurityFiles, passwords: Mapping[str, str]) -> None:
    for user, password in passwords.items():
        if user == BROKER_USER:
            continue
        write_private(
            files.client_properties(user), client_properties_text(user, password, files.ca_cert)
        )


def prepare(files: SecurityFiles, config: SecurityConfig) -> dict[str, str]:
    """TLS material, passwords and client properties files; returns user → password."""
    files.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(files.root, 0o700)
    ensure_tls(files)
    passwords = ensure_passwords(files, config)
    write_client_properties(files, passwords)
    return passwords


# ---------------------------------------------------------------------------------------------
# Broker side


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


# ---------------------------------------------------------------------------------------------
# ACLs


def acl_bindings(config: SecurityConfig) -> list:
    """The ``AclBinding``s of ``config`` (ALLOW, any host)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    out = []
    for acl in config.acls:
        for name in acl.names:
            for op in acl.operations:
                out.append(
                    AclBinding(
                        # confluent-kafka names Kafka's CLUSTER resource BROKER.
                        ResourceType.BROKER
                        if acl.resource == "cluster"
                        else ResourceType[acl.resource.upper()],
                        name,
                        ResourcePatternType[acl.pattern.upper()],
                        f"User:{acl.user}",
                        "*",
                        AclOperation[op],
                        AclPermissionType.ALLOW,
                    )
                )
    return out


def apply_acls(admin, bindings: Sequence, timeout_s: float = 30.0) -> int:
    """Create ``bindings`` (existing ones are left as they are) and return how many were sent,
    once the broker's authorizer enforces them all.

    ``CreateAcls`` returns when the controller has committed the ACLs; the broker's authorizer
    applies them when it replays the metadata log, a moment later (seen: a read right after
    ``up`` denied). So this waits until ``DescribeAcls``, answered from the broker's authorizer,
    lists every binding.
    """
    import time

    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    if not bindings:
        return 0
    for binding, future in admin.create_acls(list(bindings), request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:
            raise RuntimeError(f"creating ACL {binding} failed: {exc}") from exc
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    wanted = set(bindings)
    deadline = time.monotonic() + timeout_s
    while True:
        seen = set(admin.describe_acls(everything, request_timeout=timeout_s).result(timeout_s))
        missing = wanted - seen
        if not missing:
            return len(bindings)
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{len(missing)} ACLs not enforced by the broker {timeout_s:.0f}s after creation,"
                f" e.g. {sorted(map(str, missing))[:3]}"
            )
        time.sleep(0.2)
