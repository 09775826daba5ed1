"""The local stack: a small process supervisor for everything Beam needs on this machine.

Services (started in this order, each health-checked before the next):

=================  ===========================================================  ==============
service            what                                                         default ports
=================  ===========================================================  ==============
kafka              Apache Kafka, KRaft, 1 combined node (or ``--brokers 3``)    9092 (+9093)
java-workers       Beam's Java SDK worker pool (EXTERNAL environment)           5555
expansion-service  Beam's expansion service with Kafka IO, EXTERNAL env         8097
flink-cluster      Flink session cluster: JobManager + TaskManager (opt-in)     8081, 6123, 9249/50
flink-job-server   Beam's Flink job server (opt-in): embedded Flink, or the     8099, 8098
                   session cluster when flink-cluster runs
redis              redis-server, loopback, no persistence                      6379
marketdata         ``python -m runners.marketdata`` (skipped when absent)       8700
=================  ===========================================================  ==============

A default port that is taken falls back to a free one (recorded); a port named with ``--port``
is strict. What runs where lives in ``.local/state/stack.json``; read it through ``Stack.load()``.
Logs: ``.local/logs/<service>.log``; pid files: ``.local/run/<service>.pid``.

CLI::

    python -m runners.local up [SERVICE...] [--flink] [--brokers 3] [--secure] [--port kafka=19092]
    python -m runners.local status | down [SERVICE...] | logs SERVICE [-f] | topics [--recreate]

``--secure`` runs Kafka with SASL_SSL + SCRAM-SHA-512, TLS from a generated CA and ACLs from
``runners/security.toml`` (``runners.security``); each user's client properties file is
``Stack.kafka_config_file(user)``.

Python (pytest fixtures)::

    stack = ensure_up(["kafka"])          # starts what is missing, reuses what runs
    stack.bootstrap_servers; stack.check_alive("kafka"); stack.log_tail("kafka")
    down()
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from runners import _procs
from runners import kafka as kafka_admin
from runners import security as kafka_security
from runners._ports import LOOPBACK, PortInUseError, choose_port, free_port
from runners._procs import StartupError
from runners._state import ProcessRecord, ServiceRecord, load_state, save_state
from runners.cli import FullHelpParser

__all__ = [
    "ALL_SERVICES",
    "DEFAULT_SERVICES",
    "PortInUseError",
    "ServiceNotRunning",
    "Stack",
    "StackError",
    "StackPaths",
    "StartupError",
    "UpOptions",
    "down",
    "ensure_up",
    "kill_process",
    "resolve_services",
    "restart_process",
    "status_lines",
    "up",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
HOME_ENV = "PROPERTY_STACK_HOME"

KAFKA = "kafka"
JAVA_WORKERS = "java-workers"
EXPANSION_SERVICE = "expansion-service"
FLINK_JOB_SERVER = "flink-job-server"
FLINK_CLUSTER = "flink-cluster"
REDIS = "redis"
MARKETDATA = "marketdata"

#: Start order (a dependency always comes first).
ALL_SERVICES: tuple[str, ...] = (
    KAFKA,
    JAVA_WORKERS,
    EXPANSION_SERVICE,
    FLINK_CLUSTER,
    FLINK_JOB_SERVER,
    REDIS,
    MARKETDATA,
)
DEFAULT_SERVICES: tuple[str, ...] = (KAFKA, JAVA_WORKERS, EXPANSION_SERVICE, REDIS, MARKETDATA)
DEPENDS_ON: Mapping[str, tuple[str, ...]] = {EXPANSION_SERVICE: (JAVA_WORKERS,)}

#: Well-known ports by service and role (Kafka's are per node: see ``_kafka_port_defaults``).
DEFAULT_PORTS: Mapping[str, Mapping[str, int]] = {
    JAVA_WORKERS: {"grpc": 5555},
    EXPANSION_SERVICE: {"grpc": 8097},
    FLINK_JOB_SERVER: {"job": 8099, "artifact": 8098},
    FLINK_CLUSTER: {"rest": 8081, "rpc": 6123, "prom-jm": 9249, "prom-tm": 9250},
    REDIS: {"redis": 6379},
    MARKETDATA: {"http": 8700},
}

#: How long each service may take to become healthy (2 shared cores: JVMs start slowly).
START_TIMEOUT_S: Mapping[str, float] = {
    KAFKA: 120,
    JAVA_WORKERS: 90,
    EXPANSION_SERVICE: 120,
    FLINK_JOB_SERVER: 180,
    FLINK_CLUSTER: 240,
    REDIS: 30,
    MARKETDATA: 60,
}
STOP_TIMEOUT_S = 20.0
LOCK_TIMEOUT_S = 600.0

#: Java 17 needs these for Flink (and Beam's Flink runner) to reflect into the JDK.
FLINK_ADD_OPENS: tuple[str, ...] = tuple(
    f"--add-opens=java.base/{pkg}=ALL-UNNAMED"
    for pkg in (
        "java.util",
        "java.lang",
        "java.lang.reflect",
        "java.io",
        "java.nio",
        "sun.nio.ch",
        "java.net",
        "java.util.concurrent",
    )
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
        return rec is not None and _all_alive(rec)

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
    def artifact_endpoint(self) -> str:
        return f"localhost:{self._port(FLINK_JOB_SERVER, 'artifact')}"

    @property
    def flink_rest_url(self) -> str:
        """The Flink session cluster's REST API and web UI."""
        return f"http://localhost:{self._port(FLINK_CLUSTER, 'rest')}"

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self._port(REDIS, 'redis')}/0"

    @property
    def marketdata_url(self) -> str:
        return f"http://{LOOPBACK}:{self._port(MARKETDATA, 'http')}"

    @property
    def prism_binary(self) -> Path:
        """Prism built by ``runners.install`` (``--prism_location``)."""
        if not self.paths.prism.exists():
            raise StackError(f"{self.paths.prism} is missing: run `make setup` to build Prism")
        return self.paths.prism


# ---------------------------------------------------------------------------------------------
# Starting services


@dataclass(frozen=True)
class _Proc:
    role: str
    argv: list[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class _Plan:
    """How to start one service: its processes, how to know it is ready, facts to record."""

    processes: list[_Proc]
    ready: Callable[[], bool]
    ready_what: str
    extra: Mapping[str, object] = field(default_factory=dict)


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "java not found on PATH: install a JDK 17 (apt-get install -y openjdk-17-jdk-headless)"
        )
    return java


def _grpc_ready(address: str) -> Callable[[], bool]:
    def ready() -> bool:
        import grpc

        channel = grpc.insecure_channel(address)
        try:
            grpc.channel_ready_future(channel).result(timeout=2)
            return True
        except grpc.FutureTimeoutError:
            return False
        finally:
            channel.close()

    return ready


def _http_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    return ready


def _redis_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        import redis

        client = redis.Redis(host=LOOPBACK, port=port, socket_timeout=2, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    return ready


def _kafka_port_defaults(brokers: int) -> dict[str, int]:
    ports: dict[str, int] = {}
    for i in range(1, brokers + 1):
        ports[f"broker-{i}"] = 9092 + 2 * (i - 1)
        ports[f"controller-{i}"] = 9093 + 2 * (i - 1)
    return ports


def _plan_kafka(
    paths: StackPaths, ports: Mapping[str, int], brokers: int, secure: bool = False
) -> _Plan:
    java = _java()
    cp = paths.classpath("kafka-broker")
    cluster_dir = paths.data(KAFKA) / (
        f"cluster-{brokers}-secure" if secure else f"cluster-{brokers}"
    )
    cluster_dir.mkdir(parents=True, exist_ok=True)
    # The cluster id is kept with the data so that a restart reuses the formatted logs.
    id_file = cluster_dir / "cluster.id"
    if not id_file.exists():
        id_file.write_text(kafka_admin.new_cluster_id() + "\n")
    cluster_id = id_file.read_text().strip()
    log4j = cluster_dir / "log4j2.xml"
    log4j.write_text(kafka_admin.LOG4J2_XML)
    nodes = [
        kafka_admin.KafkaNode(
            node_id=i,
            broker_port=ports[f"broker-{i}"],
            controller_port=ports[f"controller-{i}"],
            data_dir=cluster_dir / f"node-{i}" / "data",
        )
        for i in range(1, brokers + 1)
    ]
    files = kafka_security.SecurityFiles(cluster_dir / "security")
    security: dict[str, str] | None = None
    passwords: dict[str, str] = {}
    client: dict[str, str] = {}
    if secure:
        config = kafka_security.load_security()
        passwords = kafka_security.prepare(files, config)
        security = kafka_security.broker_security_properties(
            files, config, passwords[kafka_security.BROKER_USER]
        )
        from transforms.io.client_config import librdkafka_config, load_client_security

        client = librdkafka_config(load_client_security(files.client_properties("admin")))
    procs = []
    for node in nodes:
        props = cluster_dir / f"node-{node.node_id}" / "server.properties"
        props.parent.mkdir(parents=True, exist_ok=True)
        text = kafka_admin.broker_properties(node, nodes, LOOPBACK, security)
        if secure:
            # It holds the broker's SCRAM password.
            kafka_security.write_private(props, text)
        else:
            props.write_text(text)
        log = paths.log(KAFKA if node.node_id == 1 else f"{KAFKA}-{node.node_id}")
        if not (node.data_dir / "meta.properties").exists():
            if secure:
                kafka_security.format_storage_secure(
                    java, cp, cluster_id, props, log, passwords, files.root
                )
            else:
                kafka_admin.format_storage(java, cp, cluster_id, props, log)
        jvm = kafka_admin.java_options(log4j)
        argv = [java, *jvm, "-cp", cp, kafka_admin.KAFKA_MAIN, str(props)]
        procs.append(_Proc(role=f"node-{node.node_id}", argv=argv, log=log))
    bootstrap = ",".join(f"{LOOPBACK}:{n.broker_port}" for n in nodes)
    return _Plan(
        processes=procs,
        ready=lambda: kafka_admin.brokers_ready(bootstrap, brokers, client_config=client),
        ready_what=f"Kafka metadata from {brokers} broker(s) at {bootstrap}"
        + (" (SASL_SSL as admin)" if secure else ""),
        extra={
            "brokers": brokers,
            "cluster_id": cluster_id,
            "data_dir": str(cluster_dir),
            **({"secure": True, "security_dir": str(files.root)} if secure else {}),
        },
    )


def _plan_java_workers(paths: StackPaths, ports: Mapping[str, int]) -> _Plan:
    address = f"localhost:{ports['grpc']}"
    # The pool listens where its own options say the EXTERNAL environment lives.
    options = {
        "options": {"defaultEnvironmentType": "EXTERNAL", "defaultEnvironmentConfig": address}
    }
    argv = [
        _java(),
        "-Xmx2g",
        "-cp",
        paths.classpath("expansion-service"),
        "org.apache.beam.fn.harness.ExternalWorkerService",
    ]
    return _Plan(
        processes=[
            _Proc(
                "main",
                argv,
                paths.log(JAVA_WORKERS),
                env={"PIPELINE_OPTIONS": json.dumps(options)},
            )
        ],
        ready=_grpc_ready(address),
        ready_what=f"the Java worker pool's gRPC endpoint {address}",
    )


def _plan_expansion_service(
    paths: StackPaths, ports: Mapping[str, int], running: Mapping[str, ServiceRecord]
) -> _Plan:
    workers = f"localhost:{running[JAVA_WORKERS].ports['grpc']}"
    address = f"localhost:{ports['grpc']}"
    # The environment's artifacts: by default the service's whole classpath (134 jars, 138 MB),
    # which the Python SDK downloads and hashes again for each cross-language transform at
    # submission (9 in the property pipeline: ~30 s and ~8 CPU-s, docs/performance.md). The
    # EXTERNAL worker pool already runs with every jar on its classpath, so one small file is
    # staged instead.
    staged = paths.data(EXPANSION_SERVICE) / "staged.txt"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text("Kafka IO runs in the EXTERNAL Java worker pool, on its own classpath.\n")
    argv = [
        _java(),
        "-Xmx1g",
        "-cp",
        paths.classpath("expansion-service"),
        "org.apache.beam.sdk.expansion.service.ExpansionService",
        str(ports["grpc"]),
        "--defaultEnvironmentType=EXTERNAL",
        f"--defaultEnvironmentConfig={workers}",
        f"--filesToStage={staged}",
    ]
    return _Plan(
        processes=[_Proc("main", argv, paths.log(EXPANSION_SERVICE))],
        ready=_grpc_ready(address),
        ready_what=f"the expansion service's gRPC endpoint {address}",
        extra={"environment": f"EXTERNAL {workers}"},
    )


def _plan_flink_job_server(paths: StackPaths, ports: Mapping[str, int], flink_master: str) -> _Plan:
    artifacts = paths.data(FLINK_JOB_SERVER) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        _java(),
        *FLINK_ADD_OPENS,
        "-Xmx2g",
        "-cp",
        paths.classpath("flink-job-server"),
        "org.apache.beam.runners.flink.FlinkJobServerDriver",
        f"--flink-master={flink_master}",
        "--job-host=localhost",
        f"--job-port={ports['job']}",
        f"--artifact-port={ports['artifact']}",
        # Its own expansion service is not used (ours has Kafka IO); 0 = any free port.
        "--expansion-port=0",
        f"--artifacts-dir={artifacts}",
    ]
    address = f"localhost:{ports['job']}"
    return _Plan(
        processes=[_Proc("main", argv, paths.log(FLINK_JOB_SERVER))],
        ready=_grpc_ready(address),
        ready_what=f"the Flink job server's job endpoint {address}",
        extra={"flink_master": flink_master},
    )


def _plan_flink_cluster(paths: StackPaths, ports: Mapping[str, int]) -> _Plan:
    from runners import flink_cluster

    procs = flink_cluster.cluster_processes(
        _java(),
        flink_cluster.distribution_dir(),
        paths.data(FLINK_CLUSTER),
        flink_cluster.ClusterPorts(
            rest=ports["rest"],
            rpc=ports["rpc"],
            prometheus_jobmanager=ports["prom-jm"],
            prometheus_taskmanager=ports["prom-tm"],
        ),
        log_for=lambda role: paths.log(f"{FLINK_CLUSTER}-{role}"),
    )
    rest = f"http://localhost:{ports['rest']}"
    return _Plan(
        processes=[
            _Proc(p.role, p.argv, paths.log(f"{FLINK_CLUSTER}-{p.role}"), p.env) for p in procs
        ],
        ready=lambda: flink_cluster.taskmanagers_registered(rest, 1),
        ready_what=f"a TaskManager registered at the JobManager ({rest}/overview)",
        extra={"rest_url": rest},
    )


def _plan_redis(paths: StackPaths, ports: Mapping[str, int]) -> _Plan:
    server = shutil.which("redis-server")
    if server is None:
        raise StackError(
            "redis-server not found: run `make setup` (it runs apt-get install -y redis-server)"
        )
    workdir = paths.data(REDIS)
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        server,
        "--port",
        str(ports["redis"]),
        "--bind",
        LOOPBACK,
        "--dir",
        str(workdir),
        # A cache for the enrichment step: nothing to keep across restarts.
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]
    return _Plan(
        processes=[_Proc("main", argv, paths.log(REDIS))],
        ready=_redis_ready(ports["redis"]),
        ready_what=f"redis PING on {LOOPBACK}:{ports['redis']}",
    )


def marketdata_available() -> bool:
    """True once the enrichment helper's ``runners/marketdata`` package exists."""
    return (REPO_ROOT / "runners" / "marketdata" / "__main__.py").exists()


def _plan_marketdata(paths: StackPaths, ports: Mapping[str, int]) -> _Plan:
    argv = [
        sys.executable,
        "-m",
        "runners.marketdata",
        "--host",
        LOOPBACK,
        "--port",
        str(ports["http"]),
    ]
    url = f"http://{LOOPBACK}:{ports['http']}/healthz"
    return _Plan(
        processes=[_Proc("main", argv, paths.log(MARKETDATA), cwd=REPO_ROOT)],
        ready=_http_ready(url),
        ready_what=f"HTTP 200 from {url}",
    )


# ---------------------------------------------------------------------------------------------
# Supervisor


@dataclass(frozen=True)
class UpOptions:
    """What ``up`` was asked for beyond service names."""

    brokers: int = 1
    port_overrides: Mapping[str, int] = field(default_factory=dict)
    """``service`` or ``service.role`` → port; 0 means any free port; a non-zero port is strict."""
    flink_master: str = "[local]"
    create_topics: bool = True
    secure: bool = False
    """Kafka with SASL_SSL, SCRAM-SHA-512, TLS and ACLs (``runners.security``)."""

    def __post_init__(self) -> None:
        if self.brokers not in (1, 3):
            raise ValueError(f"--brokers must be 1 or 3, got {self.brokers}")


def resolve_services(names: Iterable[str] | None, *, flink: bool = False) -> list[str]:
    """Requested names (default set when empty) plus their dependencies, in start order."""
    wanted = set(names or DEFAULT_SERVICES)
    if flink:
        wanted.add(FLINK_JOB_SERVER)
    unknown = wanted - set(ALL_SERVICES)
    if unknown:
        raise ValueError(f"unknown service(s) {sorted(unknown)}; choose from {list(ALL_SERVICES)}")
    for name in list(wanted):
        wanted.update(DEPENDS_ON.get(name, ()))
    return [s for s in ALL_SERVICES if s in wanted]


def _desired_ports(service: str, options: UpOptions) -> dict[str, tuple[int, bool]]:
    """role → (preferred port, strict) after overrides.

    ``service.role=P`` pins one role; ``service=P`` pins the service's first role (Kafka: the
    first broker); ``service=0`` lets every role of the service take any free port.
    """
    defaults = dict(
        _kafka_port_defaults(options.brokers) if service == KAFKA else DEFAULT_PORTS[service]
    )
    first_role = next(iter(defaults))
    whole = options.port_overrides.get(service)
    out: dict[str, tuple[int, bool]] = {}
    for role, port in defaults.items():
        override = options.port_overrides.get(f"{service}.{role}")
        if override is None and whole is not None and (whole == 0 or role == first_role):
            override = whole
        if override is None:
            out[role] = (port, False)
        else:
            out[role] = (override, override != 0)
    return out


def _choose_ports(service: str, options: UpOptions, taken: set[int]) -> dict[str, int]:
    """Ports for every role of ``service``, none of them in ``taken`` (which grows)."""
    chosen: dict[str, int] = {}
    for role, (preferred, strict) in _desired_ports(service, options).items():
        if preferred == 0:
            port = free_port(avoid=taken)
        else:
            port = choose_port(preferred, strict=strict, taken=taken, what=f"{service}.{role}")
        chosen[role] = port
        taken.add(port)
    return chosen


def _all_alive(rec: ServiceRecord) -> bool:
    return all(_procs.is_alive(p.pid, p.create_time) for p in rec.processes)


def _stop_record(rec: ServiceRecord, paths: StackPaths) -> dict[int, str]:
    outcome = _procs.stop_groups(
        [(p.pid, p.create_time) for p in rec.processes], timeout_s=STOP_TIMEOUT_S
    )
    for proc in rec.processes:
        _pid_file(paths, rec.name, proc.role).unlink(missing_ok=True)
    return outcome


def _pid_file(paths: StackPaths, service: str, role: str) -> Path:
    return paths.run / (f"{service}.pid" if role == "main" else f"{service}-{role}.pid")


@contextlib.contextmanager
def _locked(paths: StackPaths, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Serialise ``up``/``down`` across processes (several test sessions may share the stack)."""
    paths.lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file, "a+") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise StackError(
                        f"timed out after {timeout_s:.0f}s waiting for the stack lock"
                        f" {paths.lock_file} (another `runners.local up/down` is running)"
                    ) from exc
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class _Launched:
    """A service whose processes were spawned and that is not yet known to be ready."""

    name: str
    plan: _Plan
    ports: Mapping[str, int]
    spawned: tuple[tuple[_Proc, _procs.Spawned], ...]
    started: float


def _plan_for(
    name: str,
    paths: StackPaths,
    ports: Mapping[str, int],
    options: UpOptions,
    state: Mapping[str, ServiceRecord],
) -> _Plan:
    if name == KAFKA:
        return _plan_kafka(paths, ports, options.brokers, options.secure)
    if name == JAVA_WORKERS:
        return _plan_java_workers(paths, ports)
    if name == EXPANSION_SERVICE:
        return _plan_expansion_service(paths, ports, state)
    if name == FLINK_JOB_SERVER:
        master = options.flink_master
        if master == "[local]" and FLINK_CLUSTER in state:
            # A session cluster runs: submit there rather than to an embedded Flink.
            master = f"localhost:{state[FLINK_CLUSTER].ports['rest']}"
        return _plan_flink_job_server(paths, ports, master)
    if name == FLINK_CLUSTER:
        return _plan_flink_cluster(paths, ports)
    if name == REDIS:
        return _plan_redis(paths, ports)
    if name == MARKETDATA:
        return _plan_marketdata(paths, ports)
    raise ValueError(name)  # pragma: no cover: resolve_services rejects unknown names


def _abort(name: str, paths: StackPaths, spawned: Iterable[tuple[_Proc, _procs.Spawned]]) -> None:
    spawned = list(spawned)
    _procs.stop_groups([(sp.pid, sp.create_time) for _, sp in spawned], timeout_s=5)
    for proc, _ in spawned:
        _pid_file(paths, name, proc.role).unlink(missing_ok=True)


def _launch(
    name: str,
    paths: StackPaths,
    options: UpOptions,
    state: Mapping[str, ServiceRecord],
    taken: set[int],
) -> _Launched:
    """Choose ports (not in ``taken``, which grows), prepare and spawn a service's processes."""
    ports = _choose_ports(name, options, taken)
    plan = _plan_for(name, paths, ports, options, state)
    started = time.monotonic()
    spawned: list[tuple[_Proc, _procs.Spawned]] = []
    try:
        for proc in plan.processes:
            spawned.append(
                (proc, _procs.spawn(proc.argv, log_path=proc.log, env=proc.env, cwd=proc.cwd))
            )
        paths.run.mkdir(parents=True, exist_ok=True)
        for proc, sp in spawned:
            _pid_file(paths, name, proc.role).write_text(f"{sp.pid}\n")
    except BaseException:
        _abort(name, paths, spawned)
        raise
    return _Launched(name, plan, ports, tuple(spawned), started)


def _await_ready(
    launched: _Launched, paths: StackPaths, say: Callable[[str], None]
) -> ServiceRecord:
    """Wait (bounded) until a launched service is healthy; stop it if it dies or times out."""
    name, plan = launched.name, launched.plan

    def alive() -> bool:
        return all(_procs.is_alive(sp.pid, sp.create_time) for _, sp in launched.spawned)

    try:
        _procs.wait_until(
            plan.ready,
            what=f"{name}: {plan.ready_what}",
            timeout_s=START_TIMEOUT_S[name],
            alive=alive,
            log_path=plan.processes[0].log,
        )
    except BaseException:
        _abort(name, paths, launched.spawned)
        raise
    took = time.monotonic() - launched.started
    where = _fmt_ports(launched.ports)
    say(f"{name}: ready in {took:.1f}s on {where} (log {plan.processes[0].log})")
    return ServiceRecord(
        name=name,
        processes=tuple(
            ProcessRecord(pid=sp.pid, create_time=sp.create_time, log=str(p.log), role=p.role)
            for p, sp in launched.spawned
        ),
        ports=dict(launched.ports),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        extra={**plan.extra, "start_seconds": round(took, 1)},
    )


def _waits_for(name: str, pending: Iterable[str]) -> bool:
    """True when ``name`` must start after a service still in ``pending``."""
    pending = set(pending)
    if set(DEPENDS_ON.get(name, ())) & pending:
        return True
    # The job server submits to the session cluster when one is being started.
    return name == FLINK_JOB_SERVER and FLINK_CLUSTER in pending


def _start_in_waves(
    names: Sequence[str],
    paths: StackPaths,
    options: UpOptions,
    state: dict[str, ServiceRecord],
    say: Callable[[str], None],
) -> None:
    """Start ``names``: every service whose dependencies run is launched at once and awaited in
    parallel (JVM start-ups overlap), wave after wave. Ready services are recorded even when
    another fails; the first failure is raised after the wave."""
    pending = list(names)
    while pending:
        wave = [n for n in pending if not _waits_for(n, pending)]
        taken = {port for rec in state.values() for port in rec.ports.values()}
        launched: list[_Launched] = []
        failure: BaseException | None = None
        for name in wave:
            try:
                launched.append(_launch(name, paths, options, state, taken))
            except Exception as exc:  # reported after the others settle
                failure = failure or exc
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(launched))) as pool:
                futures = [(pool.submit(_await_ready, ln, paths, say), ln) for ln in launched]
                for future, ln in futures:
                    try:
                        state[ln.name] = future.result()
                    except Exception as exc:  # reported after the others settle
                        failure = failure or exc
        except BaseException:
            for ln in launched:
                if ln.name not in state:
                    _abort(ln.name, paths, ln.spawned)
            raise
        finally:
            save_state(paths.state_file, state)
        if failure is not None:
            raise failure
        pending = [n for n in pending if n not in wave]


def _fmt_ports(ports: Mapping[str, int]) -> str:
    return ", ".join(f"{role} {port}" for role, port in ports.items())


def _stale_reason(name: str, rec: ServiceRecord, state: Mapping[str, ServiceRecord]) -> str:
    """Why a running service must be restarted to match the others ('' when it need not)."""
    if name == EXPANSION_SERVICE and JAVA_WORKERS in state:
        wanted = f"EXTERNAL localhost:{state[JAVA_WORKERS].ports['grpc']}"
        if rec.extra.get("environment") != wanted:
            return f"it points at {rec.extra.get('environment')}, the worker pool is {wanted}"
    return ""


def up(
    names: Iterable[str] | None = None,
    *,
    options: UpOptions | None = None,
    home: Path | str | None = None,
    flink: bool = False,
    say: Callable[[str], None] = print,
) -> Stack:
    """Start the requested services (default set when ``names`` is empty) and return the stack.

    Services already running are reused; a recorded service whose processes died is cleaned up
    and started again. Kafka topics from ``runners/topics.toml`` are ensured after Kafka is up.
    Independent services start in parallel. A service that dies or misses its start timeout
    raises ``StartupError`` with its log tail; the services that became ready keep running
    (``down`` stops them).
    """
    options = options or UpOptions()
    paths = StackPaths.resolve(home)
    wanted = resolve_services(names, flink=flink)
    with _locked(paths):
        state = load_state(paths.state_file)
        to_start: list[str] = []
        for name in wanted:
            rec = state.get(name)
            if rec is not None and _all_alive(rec) and _stale_reason(name, rec, state):
                say(f"{name}: restarting ({_stale_reason(name, rec, state)})")
                _stop_record(rec, paths)
                del state[name]
                save_state(paths.state_file, state)
                rec = None
            if rec is not None and _all_alive(rec):
                if name == KAFKA and int(rec.extra.get("brokers", 1)) != options.brokers:
                    raise StackError(
                        f"kafka runs with {rec.extra.get('brokers', 1)} broker(s),"
                        f" {options.brokers} requested: run"
                        " `python -m runners.local down kafka` first"
                    )
                if name == KAFKA and bool(rec.extra.get("secure", False)) != options.secure:
                    raise StackError(
                        f"kafka runs {'secured' if rec.extra.get('secure') else 'unsecured'},"
                        f" {'--secure' if options.secure else 'unsecured'} requested: run"
                        " `python -m runners.local down kafka` first"
                    )
                say(f"{name}: already running (pid {rec.pid}, {_fmt_ports(rec.ports)})")
                continue
            if rec is not None:
                say(f"{name}: recorded but not running; cleaning up and restarting")
                _stop_record(rec, paths)
                del state[name]
                save_state(paths.state_file, state)
            if name == MARKETDATA and not marketdata_available():
                say(f"{name}: skipped (runners/marketdata does not exist yet)")
                continue
            to_start.append(name)
        _start_in_waves(to_start, paths, options, state, say)
        stack = Stack(paths, dict(state))
        admin_config = stack.kafka_client_config("admin") if KAFKA in wanted else {}
        if KAFKA in wanted and options.create_topics:
            actions = kafka_admin.ensure_topics(
                stack.bootstrap_servers, kafka_admin.load_topics(), client_config=admin_config
            )
            created = [t for t, a in actions.items() if a == "created"]
            say(f"topics: {len(actions)} ensured" + (f", created {created}" if created else ""))
        if KAFKA in wanted and stack.kafka_secure:
            bindings = kafka_security.acl_bindings(kafka_security.load_security())
            kafka_security.apply_acls(
                kafka_admin.admin_client(stack.bootstrap_servers, **admin_config), bindings
            )
            say(
                f"security: SASL_SSL SCRAM-SHA-512, {len(bindings)} ACLs ensured; client"
                f" properties files in {stack.record(KAFKA).extra['security_dir']}"
            )
    return stack


def ensure_up(
    services: Iterable[str] | None = None,
    *,
    brokers: int = 1,
    home: Path | str | None = None,
    port_overrides: Mapping[str, int] | None = None,
    create_topics: bool = True,
    secure: bool = False,
    say: Callable[[str], None] = lambda _msg: None,
) -> Stack:
    """For pytest fixtures and scripts: ``up`` quietly, returning the ``Stack``."""
    return up(
        services,
        options=UpOptions(
            brokers=brokers,
            port_overrides=dict(port_overrides or {}),
            create_topics=create_topics,
            secure=secure,
        ),
        home=home,
        say=say,
    )


def down(
    names: Iterable[str] | None = None,
    *,
    home: Path | str | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Stop the named services (all recorded ones when empty), dependents first.

    Each process group gets SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``. Returns service →
    outcome.
    """
    paths = StackPaths.resolve(home)
    results: dict[str, str] = {}
    with _locked(paths):
        state = load_state(paths.state_file)
        targets = set(names) if names else set(state)
        unknown = targets - set(ALL_SERVICES)
        if unknown:
            raise ValueError(
                f"unknown service(s) {sorted(unknown)}; choose from {list(ALL_SERVICES)}"
            )
        for name in reversed(ALL_SERVICES):
            if name not in targets:
                continue
            rec = state.get(name)
            if rec is None:
                results[name] = "not recorded"
                continue
            outcome = _stop_record(rec, paths)
            results[name] = ", ".join(sorted(set(outcome.values())))
            say(f"{name}: {results[name]}")
            del state[name]
            save_state(paths.state_file, state)
    return results


def kill_process(
    service: str,
    sig: int,
    *,
    role: str = "main",
    home: Path | str | None = None,
    wait_s: float = STOP_TIMEOUT_S,
) -> ProcessRecord:
    """Send ``sig`` to one process (group) of a running service and wait, bounded by ``wait_s``,
    until it has exited. For fault tests: the service stays recorded, dead, so that
    ``restart_process`` starts it again on the same ports with the same data; ``down`` still
    cleans up. Raises ``ServiceNotRunning`` when that process does not run, ``StackError`` when
    it outlives ``wait_s`` (a SIGTERM not honoured: send SIGKILL)."""
    paths = StackPaths.resolve(home)
    with _locked(paths):
        rec = Stack(paths, load_state(paths.state_file)).record(service)
    procs = [p for p in rec.processes if p.role == role]
    if not procs or not _procs.is_alive(procs[0].pid, procs[0].create_time):
        raise ServiceNotRunning(f"{service} ({role}) is not running")
    proc = procs[0]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    deadline = time.monotonic() + wait_s
    while _procs.is_alive(proc.pid, proc.create_time):
        if time.monotonic() >= deadline:
            raise StackError(
                f"{service} ({role}, pid {proc.pid}) still runs {wait_s:.0f}s after {sig}"
            )
        time.sleep(0.1)
    return proc


def restart_process(
    service: str,
    *,
    role: str = "main",
    home: Path | str | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> Stack:
    """Start one dead process of a recorded service again, exactly as ``up`` planned it: the
    recorded ports (clients reconnect to the same address) and the same data directory (a Kafka
    broker recovers its log); waits until the service is healthy (bounded by its start timeout).
    """
    paths = StackPaths.resolve(home)
    with _locked(paths):
        state = load_state(paths.state_file)
        rec = Stack(paths, state).record(service)
        old = next((p for p in rec.processes if p.role == role), None)
        if old is None:
            raise StackError(f"{service} has no process {role!r}")
        if _procs.is_alive(old.pid, old.create_time):
            raise StackError(f"{service} ({role}, pid {old.pid}) still runs: kill it first")
        options = UpOptions(
            brokers=int(rec.extra.get("brokers", 1)),
            flink_master=str(rec.extra.get("flink_master", "[local]")),
        )
        plan = _plan_for(service, paths, rec.ports, options, state)
        proc = next(p for p in plan.processes if p.role == role)
        started = time.monotonic()
        sp = _procs.spawn(proc.argv, log_path=proc.log, env=proc.env, cwd=proc.cwd)
        _pid_file(paths, service, role).write_text(f"{sp.pid}\n")
        new = ProcessRecord(pid=sp.pid, create_time=sp.create_time, log=str(proc.log), role=role)
        state[service] = dataclasses.replace(
            rec, processes=tuple(new if p.role == role else p for p in rec.processes)
        )
        save_state(paths.state_file, state)
        _procs.wait_until(
            plan.ready,
            what=f"{service}: {plan.ready_what}",
            timeout_s=START_TIMEOUT_S[service],
            alive=lambda: _procs.is_alive(sp.pid, sp.create_time),
            log_path=proc.log,
        )
        say(f"{service} ({role}): restarted in {time.monotonic() - started:.1f}s")
        return Stack(paths, dict(state))


def status_lines(home: Path | str | None = None) -> list[str]:
    """One line per recorded service: alive or dead, pids, ports, since, log."""
    stack = Stack.load(home)
    if not stack.services:
        return [f"nothing recorded in {stack.paths.state_file}"]
    lines = []
    for name in ALL_SERVICES:
        rec = stack.services.get(name)
        if rec is None:
            continue
        dead = [p for p in rec.processes if not _procs.is_alive(p.pid, p.create_time)]
        pids = ",".join(str(p.pid) for p in rec.processes)
        state = "running" if not dead else f"DEAD (pid {','.join(str(p.pid) for p in dead)} gone)"
        lines.append(
            f"{name:<18} {state:<10} pid {pids:<16} {_fmt_ports(rec.ports):<40}"
            f" since {rec.started_at}  log {rec.log}"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# CLI


def _parse_ports(specs: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not value.isdigit():
            raise ValueError(f"--port {spec!r}: expected SERVICE=PORT or SERVICE.ROLE=PORT")
        if key.split(".")[0] not in ALL_SERVICES:
            raise ValueError(f"--port {spec!r}: unknown service; choose from {list(ALL_SERVICES)}")
        out[key] = int(value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = FullHelpParser(
        prog="python -m runners.local", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--home", help=f"stack home (default .local, or ${HOME_ENV})")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start services (default: the default set)")
    p_up.add_argument("services", nargs="*", help=f"any of {', '.join(ALL_SERVICES)}")
    p_up.add_argument("--flink", action="store_true", help="also start the Flink job server")
    p_up.add_argument("--brokers", type=int, default=1, choices=(1, 3), help="Kafka brokers")
    p_up.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="SERVICE[.ROLE]=PORT",
        help="pin a port (strict: fails if taken); 0 = any free port",
    )
    p_up.add_argument("--no-topics", action="store_true", help="do not create runners/topics.toml")
    p_up.add_argument(
        "--secure",
        action="store_true",
        help="Kafka with SASL_SSL (SCRAM-SHA-512), TLS and the ACLs of runners/security.toml",
    )
    p_down = sub.add_parser("down", help="stop services (default: all)")
    p_down.add_argument("services", nargs="*")
    sub.add_parser("status", help="what runs where")
    p_logs = sub.add_parser("logs", help="tail a service's log")
    p_logs.add_argument("service", choices=ALL_SERVICES)
    p_logs.add_argument("-n", "--lines", type=int, default=50)
    p_logs.add_argument("-f", "--follow", action="store_true", help="follow (Ctrl-C to stop)")
    p_topics = sub.add_parser("topics", help="(re)create the topics of runners/topics.toml")
    p_topics.add_argument("--recreate", action="store_true", help="delete and create (data lost)")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            started = time.monotonic()
            options = UpOptions(
                brokers=args.brokers,
                port_overrides=_parse_ports(args.port),
                create_topics=not args.no_topics,
                secure=args.secure,
            )
            stack = up(args.services, options=options, home=args.home, flink=args.flink)
            print(f"stack up in {time.monotonic() - started:.1f}s; state {stack.paths.state_file}")
        elif args.command == "down":
            down(args.services, home=args.home)
        elif args.command == "status":
            print("\n".join(status_lines(args.home)))
        elif args.command == "logs":
            log = Stack.load(args.home).log_path(args.service)
            if args.follow:
                os.execvp("tail", ["tail", "-n", str(args.lines), "-F", str(log)])
            print(_procs.tail(log, args.lines), end="")
        elif args.command == "topics":
            stack = Stack.load(args.home)
            stack.check_alive(KAFKA)
            actions = kafka_admin.ensure_topics(
                stack.bootstrap_servers,
                kafka_admin.load_topics(),
                recreate=args.recreate,
                client_config=stack.kafka_client_config("admin"),
            )
            for topic, action in actions.items():
                print(f"{topic}: {action}")
    except (RuntimeError, ValueError, TimeoutError, OSError) as exc:
        # StackError, StartupError, PortInUseError and Kafka admin failures: one clear line.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
