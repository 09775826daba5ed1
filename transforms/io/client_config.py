"""One Kafka client-security configuration for every client: a standard client properties file.

Users already have a Kafka client properties file for their cluster (the format of Kafka's own
``--command-config`` / ``client.properties``). It is given once (``--kafka_config_file`` to the
pipelines, ``KAFKA_CONFIG_FILE`` to the tools) and mapped here, in one place, for both kinds of
client the project runs:

- **Java clients** (Beam's KafkaIO, cross-language): ``java_client_config``. Non-secret settings
  pass unchanged. Secret values (``sasl.jaas.config``, ``ssl.*.password``, ``ssl.keystore.key``
  ...) are replaced by a Kafka *config provider* reference, ``${file:<the file>:<key>}``, with
  ``FileConfigProvider`` declared; the Java client resolves it when KafkaIO creates a consumer or
  producer on the worker, by reading the same file there. The password therefore never enters
  the pipeline proto, Beam's options, the Flink job or a Dataflow job spec: only the file's path
  does. The file must exist at that path on every worker (local runs: it does; Flink and Dataflow:
  docs/security.md). Values that already are config-provider references pass unchanged.
- **librdkafka** (confluent-kafka: simulator, verify, DLQ tool, demo, tests):
  ``librdkafka_config``. Only security settings are mapped (``security.protocol``,
  ``sasl.*``, ``ssl.*``); a setting librdkafka has no equivalent for is an error naming it.
  ``${file:path:key}`` and ``${env:NAME}`` references are resolved here, on the machine that runs
  the tool.

Everything here is a pure function of the file's text (plus files it references); nothing logs a
value. ``ClientConfigError`` messages name keys and files, never values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Environment variable the tools read the client properties file from.
KAFKA_CONFIG_FILE_ENV = "KAFKA_CONFIG_FILE"

FILE_PROVIDER_CLASS = "org.apache.kafka.common.config.provider.FileConfigProvider"
_PROVIDER_NAME = "beamsecretfile"
_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.\-]+):(?:(.*):)?([^:}]+)\}")
# Settings whose value is secret (Kafka's PASSWORD-typed client configs).
SECRET_KEYS = frozenset(
    {
        "sasl.jaas.config",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.truststore.password",
        "ssl.keystore.key",
        "sasl.oauthbearer.client.credentials.client.secret",
        "basic.auth.user.info",
    }
)
# Set by the pipelines' own flags or by the transforms; never taken from the file.
_NOT_FROM_FILE = frozenset(
    {"bootstrap.servers", "group.id", "key.deserializer", "value.deserializer",
     "key.serializer", "value.serializer"}
)  # fmt: skip
_LOGIN_MODULES = {
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
}
_JAAS = re.compile(r"^\s*(?P<module>[\w.$]+)\s+(?P<flag>\w+)(?P<options>.*?);?\s*$", re.DOTALL)
_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]+))')


class ClientConfigError(ValueError):
    """The client properties file cannot be used; the message names the file, key and the fix."""


def is_secret(key: str) -> bool:
    """True for settings whose value must never leave the file (passwords, keys, JAAS)."""
    return key in SECRET_KEYS or key.endswith(".password") or key.endswith("sasl.jaas.config")


def parse_properties(text: str) -> dict[str, str]:
    """Java ``.properties`` text as a dict: ``#``/``!`` comments, ``=``, ``:`` or space
    separators, backslash line continuations and escapes (``\\t \\n \\\\ \\=``; ``\\uXXXX``)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    out: dict[str, str] = {}
    for line in logical:
        key, i = _read_token(line, 0, key=True)
        while i < len(line) and line[i] in " \t\f":
            i += 1
        if i < len(line) and line[i] in "=:":
            i += 1
        while i < len(line) and line[i] in " \t\f":
            i += 1
        value, _ = _read_token(line, i, key=False)
        out[key] = value
    return out


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _read_token(line: str, i: int, *, key: bool) -> tuple[str, int]:
    chars: list[str] = []
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            n = line[i + 1]
            if n == "u" and i + 6 <= len(line):
                chars.append(chr(int(line[i + 2 : i + 6], 16)))
                i += 6
                continue
            chars.append(_ESCAPES.get(n, n))
            i += 2
            continue
        if key and c in "=: \t\f":
            break
        chars.append(c)
        i += 1
    return "".join(chars), i


@dataclass(frozen=True)
class ClientSecurity:
    """A loaded client properties file: its absolute path and its settings (secrets included:
    never print ``properties``)."""

    path: Path
    properties: Mapping[str, str]

    @property
    def bootstrap_servers(self) -> str | None:
        return self.properties.get("bootstrap.servers")

    def __repr__(self) -> str:  # the settings hold secrets: show keys only
        return f"ClientSecurity(path={str(self.path)!r}, keys={sorted(self.properties)})"


def load_client_security(path: str | os.PathLike[str]) -> ClientSecurity:
    """Read a client properties file; ``ClientConfigError`` when it is missing or unreadable."""
    p = Path(path).expanduser().resolve()
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ClientConfigError(
            f"Kafka client properties file {p} does not exist: give the path of your cluster's "
            "client properties (security.protocol, sasl.*, ssl.*), or run "
            "`python -m runners.local up --secure` for the local secured stack's files"
        ) from None
    except OSError as exc:
        raise ClientConfigError(f"cannot read Kafka client properties file {p}: {exc}") from None
    return ClientSecurity(p, parse_properties(text))


def client_security_from_env(
    env: Mapping[str, str] | None = None,
) -> ClientSecurity | None:
    """The file named by ``$KAFKA_CONFIG_FILE`` (None when unset or empty)."""
    value = (os.environ if env is None else env).get(KAFKA_CONFIG_FILE_ENV)
    return load_client_security(value) if value else None


# ---------------------------------------------------------------------------------------------
# Java clients (Beam's KafkaIO)


def java_client_config(security: ClientSecurity) -> dict[str, str]:
    """Consumer/producer settings for Kafka's Java clients, secrets as file references.

    ``bootstrap.servers``, ``group.id`` and (de)serializers are left out: the pipeline sets them.
    """
    props = dict(security.properties)
    out: dict[str, str] = {}
    indirect = False
    for key, value in props.items():
        if key in _NOT_FROM_FILE or key.startswith("config.providers"):
            continue
        if is_secret(key) and not _REFERENCE.fullmatch(value.strip()):
            out[key] = f"${{{_PROVIDER_NAME}:{security.path}:{key}}}"
            indirect = True
        else:
            out[key] = value
    providers = [p.strip() for p in props.get("config.providers", "").split(",") if p.strip()]
    for key, value in props.items():
        if key.startswith("config.providers."):
            out[key] = value
    if indirect:
        providers.append(_PROVIDER_NAME)
        out[f"config.providers.{_PROVIDER_NAME}.class"] = FILE_PROVIDER_CLASS
    if providers:
        out["config.providers"] = ",".join(providers)
    return out


# ---------------------------------------------------------------------------------------------
# librdkafka (confluent-kafka)


def resolve_references(value: str, env: Mapping[str, str] | None = None) -> str:
    """Resolve Kafka config-provider references: ``${file:path:key}`` reads ``key`` of the
    properties file ``path`` (any provider name whose reference has a path), ``${env:NAME}`` the
    environment variable."""
    env = os.environ if env is None else env

    def one(m: re.Match[str]) -> str:
        provider, path, key = m.group(1), m.group(2), m.group(3)
        if path:
            try:
                props = parse_properties(Path(path).read_text())
            except OSError as exc:
                raise ClientConfigError(
                    f"config reference ${{{provider}:{path}:{key}}}: cannot read {path}: {exc}"
                ) from None
            if key not in props:
                raise ClientConfigError(f"config reference: {path} has no key {key!r}")
            return props[key]
        if provider == "env":
            if key not in env:
                raise ClientConfigError(
                    f"config reference ${{env:{key}}}: environment variable {key} is not set"
                )
            return env[key]
        raise ClientConfigError(
            f"config reference ${{{provider}:{key}}}: only file (with a path) and env "
            "references can be resolved for librdkafka"
        )

    return _REFERENCE.sub(one, value)


def parse_jaas(jaas: str) -> tuple[str, dict[str, str]]:
    """``(login module, options)`` of a one-entry ``sasl.jaas.config`` value."""
    m = _JAAS.match(jaas)
    if not m:
        raise ClientConfigError(
            "sasl.jaas.config is not '<LoginModule> required key=\"value\" ...;'"
        )
    options = {
        om.group(1): (om.group(2) if om.group(2) is not None else om.group(3))
        for om in _JAAS_OPTION.finditer(m.group("options"))
    }
    options = {k: re.sub(r"\\(.)", r"\1", v) for k, v in options.items()}
    return m.group("module"), options


def librdkafka_config(
    security: ClientSecurity | None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """librdkafka settings equivalent to the file's security settings ({} for None).

    Mapped: security.protocol; sasl.mechanism → sasl.mechanisms; sasl.jaas.config (SCRAM or
    PLAIN login module) → sasl.username/sasl.password; PEM truststore → ssl.ca.location or
    ssl.ca.pem; PEM keystore → ssl.certificate.location + ssl.key.location (mTLS), PKCS12 keystore
    → ssl.keystore.location/password; ssl.key.password; ssl.endpoint.identification.algorithm.
    Settings outside ``security.``/``sasl.``/``ssl.`` are Java client tuning and are not used.
    """
    if security is None:
        return {}
    props = {
        k: resolve_references(v, env)
        for k, v in security.properties.items()
        if k.startswith(("security.", "sasl.", "ssl.")) and not k.startswith("config.providers")
    }
    where = f"{security.path}"
    out: dict[str, str] = {}
    used: set[str] = set()

    def take(key: str) -> str | None:
        used.add(key)
        return props.get(key)

    if (protocol := take("security.protocol")) is not None:
        out["security.protocol"] = protocol.upper()
    mechanism = take("sasl.mechanism")
    if mechanism is not None:
        out["sasl.mechanisms"] = mechanism
    jaas = take("sasl.jaas.config")
    if jaas is not None:
        module, options = parse_jaas(jaas)
        mechanisms = _LOGIN_MODULES.get(module)
        if mechanisms is None:
            raise ClientConfigError(
                f"{where}: sasl.jaas.config uses {module}; the Python tools (librdkafka) support "
                f"SCRAM and PLAIN login modules: {', '.join(_LOGIN_MODULES)}"
            )
        if (mechanism or "GSSAPI") not in mechanisms:
            raise ClientConfigError(
                f"{where}: sasl.mechanism is {mechanism or 'unset (GSSAPI)'} but sasl.jaas.config"
                f" uses {module.rsplit('.', 1)[-1]}; set sasl.mechanism to one of {mechanisms}"
            )
        for opt in ("username", "password"):
            if opt not in options:
                raise ClientConfigError(f'{where}: sasl.jaas.config has no {opt}="..."')
        out["sasl.username"] = options["username"]
        out["sasl.password"] = options["password"]
    ttype = (take("ssl.truststore.type") or "JKS").upper()
    tlocation = take("ssl.truststore.location")
    tcerts = take("ssl.truststore.certificates")
    take("ssl.truststore.password")  # JKS/PKCS12 integrity password: no librdkafka equivalent
    if tlocation or tcerts:
        if ttype != "PEM":
            raise ClientConfigError(
                f"{where}: ssl.truststore.type is {ttype}; the Python tools (librdkafka) read PEM "
                "CA certificates only: export the CA as PEM (keytool -exportcert -rfc) and set "
                "ssl.truststore.type=PEM with ssl.truststore.location=<ca.pem>"
            )
        if tlocation:
            out["ssl.ca.location"] = tlocation
        else:
            out["ssl.ca.pem"] = tcerts or ""
    ktype = (take("ssl.keystore.type") or "JKS").upper()
    klocation = take("ssl.keystore.location")
    kpassword = take("ssl.keystore.password")
    if klocation:
        if ktype == "PEM":
            out["ssl.certificate.location"] = klocation
            out["ssl.key.location"] = klocation
        elif ktype == "PKCS12":
            out["ssl.keystore.location"] = klocation
            if kpassword is not None:
                out["ssl.keystore.password"] = kpassword
        else:
            raise ClientConfigError(
                f"{where}: ssl.keystore.type is {ktype}; the Python tools (librdkafka) read PEM "
                "or PKCS12 keystores: set ssl.keystore.type=PEM (key and chain in one file) or "
                "PKCS12"
            )
    if (kkey := take("ssl.keystore.key")) is not None:
        out["ssl.key.pem"] = kkey
    if (kchain := take("ssl.keystore.certificate.chain")) is not None:
        out["ssl.certificate.pem"] = kchain
    if (keypass := take("ssl.key.password")) is not None:
        out["ssl.key.password"] = keypass
    algo = take("ssl.endpoint.identification.algorithm")
    if algo is not None:
        out["ssl.endpoint.identification.algorithm"] = algo.lower() or "none"
    # Java-only TLS knobs with sane librdkafka defaults.
    used |= {"ssl.protocol", "ssl.enabled.protocols", "ssl.keystore.certificate.chain"}
    left = sorted(set(props) - used)
    if left:
        raise ClientConfigError(
            f"{security.path}: {', '.join(left)} has no librdkafka equivalent here; the Python "
            "tools cannot honour it (remove it or map it in transforms/io/client_config.py)"
        )
    return out


# The settings a client properties file supplies (its Java form included: file references and
# config providers); replaced as a whole by the file's own, mapped to librdkafka.
SECURITY_PREFIXES = ("security.", "sasl.", "ssl.", "config.providers")


def with_file_security(config: Mapping[str, str], security_file: str | None) -> dict[str, str]:
    """``config`` (a librdkafka client's) with its security settings replaced by those of the
    client properties file ``security_file``, read now (call it where the client runs: secrets
    never travel in the job); unchanged without a file."""
    if security_file is None:
        return dict(config)
    out = {k: v for k, v in config.items() if not k.startswith(SECURITY_PREFIXES)}
    out.update(librdkafka_config(load_client_security(security_file)))
    return out
