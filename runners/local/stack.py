"""The typed view of the local stack other code uses: where it keeps things (``StackPaths``) and
what runs where (``Stack``, read from the state file ``runners.local`` writes)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runners import _procs
from runners import security as kafka_security
from runners._ports import LOOPBACK
from runners._state import ServiceRecord, load_state
from runners.local.services import (
    EXPANSION_SERVICE,
    FLINK_CLUSTER,
    FLINK_EXPANSION_SERVICE,
    FLINK_JOB_SERVER,
    HOME_ENV,
    JAVA_WORKERS,
    KAFKA,
    MARKETDATA,
    PROMETHEUS,
    PYTHON_WORKERS,
    REDIS,
    REPO_ROOT,
    SCHEMA_REGISTRY,
)


class StackError(RuntimeError):
    """The stack cannot do what was asked; the message says what to run or change."""


class ServiceNotRunning(StackError):
    """A service the caller needs is not running (or died)."""


# ---------------------------------------------------------------------------------------------
# Paths


@dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps things. ``home`` holds state, logs, pids and data (``.local`` by
    default, ``$PROPERTY_STACK_HOME`` or ``--home`` to isolate a second stack, e.g. in a test);
    ``lib`` (jars from Maven) and ``bin`` (Prism) are always the repository's, shared."""

    home: Path
    lib: Path
    bin: Path

    @classmethod
    def resolve(cls, home: Path | str | None = None) -> StackPaths:
        base = REPO_ROOT / ".local"
        chosen = Path(home) if home else Path(os.environ.get(HOME_ENV) or base)
        return cls(home=chosen.resolve(), lib=base / "lib", bin=base / "bin")

    @property
    def state_file(self) -> Path:
        return self.home / "state" / "stack.json"

    @property
    def lock_file(self) -> Path:
        return self.home / "state" / "stack.lock"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def prism(self) -> Path:
        return self.bin / "prism"

    def data(self, service: str) -> Path:
        return self.home / service

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def classpath(self, component: str) -> str:
        """``<lib>/<component>/*`` for ``java -cp``; a clear error when Maven has not run."""
        folder = self.lib / component
        if not folder.is_dir() or not any(folder.glob("*.jar")):
            raise StackError(
                f"{folder} holds no jars: run `make setup` (or `python -m runners.install`) first"
            )
        return f"{folder}/*"


# ---------------------------------------------------------------------------------------------
# The typed view other code uses


@dataclass(frozen=True)
class Stack:
    """What runs where, as recorded in the state file. Addresses are loopback ``host:port``."""

    paths: StackPaths
    services: Mapping[str, ServiceRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, home: Path | str | None = None) -> Stack:
        """The stack as recorded (services may have died since: see ``is_running``)."""
        paths = StackPaths.resolve(home)
        return cls(paths, load_state(paths.state_file))

    def record(self, service: str) -> ServiceRecord:
        rec = self.services.get(service)
        if rec is None:
            raise ServiceNotRunning(
                f"{service} is not running: start it with `python -m runners.local up {service}`"
            )
        return rec

    def is_running(self, service: str) -> bool:
        rec = self.services.get(service)
        return rec is not None and all_alive(rec)

    def check_alive(self, service: str) -> None:
        """Raise ``ServiceNotRunning`` with the service's last log lines when it has died."""
        rec = self.record(service)
        for proc in rec.processes:
            if not _procs.is_alive(proc.pid, proc.create_time):
                raise ServiceNotRunning(
                    f"{service} ({proc.role}, pid {proc.pid}) is not running any more;"
                    f" last lines of {proc.log}:\n{_procs.tail(Path(proc.log), 30).rstrip()}"
                )

    def log_path(self, service: str) -> Path:
        rec = self.services.get(service)
        return Path(rec.log) if rec else self.paths.log(service)

    def log_tail(self, service: str, lines: int = 30) -> str:
        """The last ``lines`` lines of every log of ``service`` (all nodes for Kafka)."""
        rec = self.services.get(service)
        logs = [Path(p.log) for p in rec.processes] if rec else [self.paths.log(service)]
        return "\n".join(
            f"--- {log} ---\n{_procs.tail(log, lines).rstrip()}" for log in dict.fromkeys(logs)
        )

    def _port(self, service: str, role: str) -> int:
        return self.record(service).ports[role]

    @property
    def bootstrap_servers(self) -> str:
        """Kafka ``bootstrap.servers``: every broker of the local cluster."""
        rec = self.record(KAFKA)
        brokers = sorted((r, p) for r, p in rec.ports.items() if r.startswith("broker-"))
        return ",".join(f"{LOOPBACK}:{p}" for _, p in brokers)

    @property
    def proxy_routes(self) -> list[tuple[str, str]]:
        """(proxy address, broker address) per broker of a stack started ``proxied``: a TCP
        proxy at the first forwarding to the second lets clients bootstrapped at
        ``proxied_bootstrap_servers`` reach the cluster (``runners.toxiproxy``); [] otherwise."""
        ports = self.record(KAFKA).ports
        return [
            (f"{LOOPBACK}:{ports[f'proxy-{i}']}", f"{LOOPBACK}:{ports[f'proxied-{i}']}")
            for i in range(1, self.kafka_brokers + 1)
            if f"proxy-{i}" in ports
        ]

    @property
    def proxied_bootstrap_servers(self) -> str:
        """``bootstrap.servers`` through the proxies of ``proxy_routes``."""
        return ",".join(proxy for proxy, _ in self.proxy_routes)

    @property
    def kafka_brokers(self) -> int:
        return int(self.record(KAFKA).extra.get("brokers", 1))

    @property
    def kafka_secure(self) -> bool:
        """True when Kafka runs secured (``up --secure``): SASL_SSL, SCRAM, ACLs."""
        return bool(self.record(KAFKA).extra.get("secure", False))

    def kafka_config_file(self, user: str) -> Path | None:
        """The client properties file (0600, holds the password) of ``user`` of
        ``runners/security.toml`` on the secured stack; None when Kafka runs unsecured."""
        if not self.kafka_secure:
            return None
        path = kafka_security.SecurityFiles(
            Path(str(self.record(KAFKA).extra["security_dir"]))
        ).client_properties(user)
        if not path.exists():
            raise StackError(f"{path} is missing: is {user!r} a user of runners/security.toml?")
        return path

    def kafka_client_config(self, user: str = "admin") -> dict[str, str]:
        """librdkafka security settings of ``user`` ({} when Kafka runs unsecured)."""
        from transforms.io.client_config import librdkafka_config, load_client_security

        path = self.kafka_config_file(user)
        return librdkafka_config(load_client_security(path)) if path else {}

    @property
    def expansion_service(self) -> str:
        """Beam's expansion service (Kafka IO, EXTERNAL environment), for ``--beam_services``."""
        return f"localhost:{self._port(EXPANSION_SERVICE, 'grpc')}"

    @property
    def worker_pool(self) -> str:
        """The Java SDK worker pool the EXTERNAL environment points at."""
        return f"localhost:{self._port(JAVA_WORKERS, 'grpc')}"

    @property
    def job_endpoint(self) -> str:
        """Beam's Flink job server (``--job_endpoint``)."""
        return f"localhost:{self._port(FLINK_JOB_SERVER, 'job')}"

    @property
    def flink_expansion_service(self) -> str:
        """Beam's expansion service at the Flink runner's version (the native Kafka read)."""
        return f"localhost:{self._port(FLINK_EXPANSION_SERVICE, 'grpc')}"

    @property
    def artifact_endpoint(self) -> str:
        return f"localhost:{self._port(FLINK_JOB_SERVER, 'artifact')}"

    @property
    def flink_rest_url(self) -> str:
        """The Flink session cluster's REST API and web UI."""
        return f"http://localhost:{self._port(FLINK_CLUSTER, 'rest')}"

    @property
    def flink_taskmanagers(self) -> int:
        """How many TaskManagers the session cluster runs."""
        return int(self.record(FLINK_CLUSTER).extra.get("taskmanagers", 1))

    @property
    def python_worker_pool(self) -> str:
        """Beam's Python SDK worker pool, for ``--environment_type=EXTERNAL
        --environment_config=<this>``."""
        return f"localhost:{self._port(PYTHON_WORKERS, 'grpc')}"

    @property
    def prometheus_url(self) -> str:
        """Prometheus's web UI and HTTP API (``/api/v1/query``, ``/api/v1/alerts``)."""
        return f"http://{LOOPBACK}:{self._port(PROMETHEUS, 'http')}"

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self._port(REDIS, 'redis')}/0"

    @property
    def marketdata_url(self) -> str:
        return f"http://{LOOPBACK}:{self._port(MARKETDATA, 'http')}"

    @property
    def schema_registry_url(self) -> str:
        """The schema registry (opt-in service), for ``--schema_registry_url``."""
        return f"http://{LOOPBACK}:{self._port(SCHEMA_REGISTRY, 'http')}"

    @property
    def prism_binary(self) -> Path:
        """Prism built by ``runners.install`` (``--prism_location``)."""
        if not self.paths.prism.exists():
            raise StackError(f"{self.paths.prism} is missing: run `make setup` to build Prism")
        return self.paths.prism


def all_alive(rec: ServiceRecord) -> bool:
    return all(_procs.is_alive(p.pid, p.create_time) for p in rec.processes)
