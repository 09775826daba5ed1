"""The secured stack's files: a CA and the broker's TLS key store, one generated password per
user, and each user's client properties file (0600: it holds the password)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runners.security.config import BROKER_USER, SCRAM_LOGIN, SCRAM_MECHANISM, SecurityConfig


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
