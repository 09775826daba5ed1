"""The Kafka side of the local stack: KRaft broker configuration, storage formatting, a real
health check, and topic creation from ``runners/topics.toml`` (or any list of ``TopicSpec``).

The broker is Apache Kafka (version from ``runners/java/pom.xml``) run from the jars Maven copied
into ``.local/lib/kafka-broker/``. One node is a combined broker+controller; three nodes form a
static controller quorum, every node both broker and controller, with replication factor 3 and
``min.insync.replicas`` 2 as defaults for new topics.

Health is a metadata request answered by every expected broker (confluent-kafka's AdminClient),
never a sleep.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ClusterMetadata,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

TOPICS_TOML = Path(__file__).resolve().parent / "topics.toml"
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


# ---------------------------------------------------------------------------------------------
# Broker configuration


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node of the local cluster (combined broker + controller)."""

    node_id: int
    broker_port: int
    controller_port: int
    data_dir: Path
    proxied_port: int | None = None
    """Port of a second client listener (``PROXIED``), advertised at ``proxy_port``: a TCP proxy
    there (Toxiproxy, for fault tests) forwards to it, so a client bootstrapped at the proxy
    reconnects through the proxy."""
    proxy_port: int | None = None


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding, as Kafka's
    ``Uuid.randomUuid()`` prints it (which also never starts with '-')."""
    for _ in range(100):
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
    raise RuntimeError("could not draw a cluster id")  # pragma: no cover: p(-) = 1/64 per draw


def broker_properties(
    node: KafkaNode,
    nodes: Sequence[KafkaNode],
    host: str = "127.0.0.1",
    security: Mapping[str, str] | None = None,
) -> str:
    """``server.properties`` for ``node`` in a cluster of ``nodes`` (1 or 3), loopback only.

    With ``security`` (``runners.security.broker_security_properties``) the client and
    inter-broker listener is ``SASL_SSL`` instead of ``PLAINTEXT``; the controller listener stays
    PLAINTEXT on loopback either way (KAFKA-15513). A node with ``proxied_port`` gets a second
    client listener of the same protocol, ``PROXIED``, advertised at its ``proxy_port``; the
    brokers talk to each other on the first one.
    """
    listener = "SASL_SSL" if security else "PLAINTEXT"
    listeners = [f"{listener}://{host}:{node.broker_port}"]
    advertised = [f"{listener}://{host}:{node.broker_port}"]
    protocols = [f"CONTROLLER:PLAINTEXT,{listener}:{listener}"]
    if node.proxied_port is not None:
        listeners.append(f"PROXIED://{host}:{node.proxied_port}")
        advertised.append(f"PROXIED://{host}:{node.proxy_port}")
        protocols.append(f"PROXIED:{listener}")
    n = len(nodes)
    voters = ",".join(f"{x.node_id}@{host}:{x.controller_port}" for x in nodes)
    # Internal topics and new topics replicate over every node up to 3; with 3 nodes a write
    # needs 2 in-sync replicas so that one broker may die without losing acknowledged data.
    rf = min(n, 3)
    min_isr = 2 if n >= 3 else 1
    lines = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": ",".join([*listeners, f"CONTROLLER://{host}:{node.controller_port}"]),
        "advertised.listeners": ",".join(advertised),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": listener,
        "listener.security.protocol.map": ",".join(protocols),
        "log.dirs": str(node.data_dir),
        "num.partitions": 1,
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Consumers in tests join a fresh group each time; do not wait 3 s for more members.
        "group.initial.rebalance.delay.ms": 0,
        # Producers and consumers from pipelines and tests use topics created explicitly; an
        # unknown topic is kept an error instead of a silent 1-partition topic.
        "auto.create.topics.enable": "false",
        # A local stack: small segments so that compaction (properties-by-zip) is visible soon.
        "log.segment.bytes": 64 * 1024 * 1024,
        "log.cleaner.min.compaction.lag.ms": 0,
        **(security or {}),
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Kafka logs to stdout; the supervisor appends stdout to .local/logs/kafka*.log. -->
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="stdout"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
  </Loggers>
</Configuration>
"""


def java_options(log4j_config: Path, heap: str = "768m") -> list[str]:
    """JVM flags for a broker (what Kafka's scripts pass, trimmed for a 2-core machine)."""
    return [
        "-Xms256m",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j_config}",
    ]


def format_storage(
    java: str,
    classpath: str,
    cluster_id: str,
    properties: Path,
    log_path: Path,
    timeout_s: float = 120,
    *,
    secret_args: Sequence[str] = (),
    shown_args: Sequence[str] = (),
    argfile_dir: Path | None = None,
) -> None:
    """Format a node's log directory with Kafka's StorageTool (skipped by the tool if formatted).

    ``secret_args`` (e.g. ``--add-scram`` credentials) never go on a command line: the whole
    argument list goes to ``java`` in a 0600 ``@argfile`` under ``argfile_dir``, deleted
    afterwards, and the log shows ``shown_args`` (the same arguments, secrets masked) instead.
    """
    args = [STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(properties), "--ignore-formatted"]
    cmd = [java, "-Xmx256m", "-cp", classpath]
    shown = [*cmd, *args, *shown_args]
    argfile = None
    if secret_args:
        if argfile_dir is None:
            raise ValueError("secret_args need an argfile_dir")
        argfile = argfile_dir / f"format-{os.getpid()}.args"
        argfile_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            # One argument per line, quoted: the java launcher's @argfile syntax.
            fh.write("".join(f'"{a}"\n' for a in [*args, *secret_args]))
        cmd.append(f"@{argfile}")
    else:
        cmd += args
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_path, "ab") as log:
            log.write(f"=== format storage: {' '.join(shown)}\n".encode())
            log.flush()
            try:
                proc = subprocess.run(
                    cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(
                    f"Kafka StorageTool did not finish formatting {properties} in"
                    f" {timeout_s:.0f}s; see {log_path}"
                ) from exc
    finally:
        if argfile is not None:
            argfile.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"Kafka StorageTool format failed (exit {proc.returncode}); see {log_path}"
        )


# ---------------------------------------------------------------------------------------------
# Admin: health and topics


def admin_client(bootstrap_servers: str, **config: str | int) -> AdminClient:
    """An AdminClient for the stack (librdkafka's own logging silenced: we report errors)."""
    conf: dict[str, str | int] = {"bootstrap.servers": bootstrap_servers, "log_level": 0}
    conf.update(config)
    return AdminClient(conf)


def cluster_metadata(
    bootstrap_servers: str, timeout_s: float = 5.0, client_config: Mapping[str, str] | None = None
) -> ClusterMetadata:
    """A real metadata request; raises ``KafkaException`` when no broker answers in time."""
    return admin_client(bootstrap_servers, **(client_config or {})).list_topics(timeout=timeout_s)


def brokers_ready(
    bootstrap_servers: str,
    expected_brokers: int,
    timeout_s: float = 3.0,
    client_config: Mapping[str, str] | None = None,
) -> bool:
    """True when a metadata request answers and lists ``expected_brokers`` brokers."""
    try:
        md = cluster_metadata(bootstrap_servers, timeout_s, client_config)
    except KafkaException:
        return False
    return len(md.brokers) >= expected_brokers


@dataclass(frozen=True)
class TopicSpec:
    """A topic as ``kafka-topics --create`` would make it.

    ``replication`` None means the cluster default (1 on one broker, 3 on three). ``config`` holds
    any other topic-level settings by their Kafka names.
    """

    name: str
    partitions: int = 1
    replication: int | None = None
    retention_ms: int | None = None
    cleanup_policy: str | None = None
    config: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or any(c not in _TOPIC_CHARS for c in self.name) or len(self.name) > 249:
            raise ValueError(
                f"topic name {self.name!r} must be 1-249 chars of [a-zA-Z0-9._-]; rename it"
            )
        if self.partitions < 1:
            raise ValueError(f"topic {self.name}: partitions must be >= 1, got {self.partitions}")
        if self.replication is not None and self.replication < 1:
            raise ValueError(f"topic {self.name}: replication must be >= 1, got {self.replication}")
        if self.cleanup_policy is not None and not set(self.cleanup_policy.split(",")) <= {
            "delete",
            "compact",
        }:
            raise ValueError(
                f"topic {self.name}: cleanup_policy must be delete, compact or 'compact,delete',"
                f" got {self.cleanup_policy!r}"
            )

    def topic_config(self) -> dict[str, str]:
        """The topic-level configs to set, by Kafka name."""
        out = {k: str(v) for k, v in self.config.items()}
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        if self.cleanup_policy is not None:
            out["cleanup.policy"] = self.cleanup_policy
        return out


_TOPIC_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_TOPIC_KEYS = {"name", "partitions", "replication", "retention_ms", "cleanup_policy", "config"}


def load_topics(path: Path = TOPICS_TOML) -> list[TopicSpec]:
    """The topics declared in ``path``: ``[defaults]`` then one ``[[topic]]`` table per topic."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    defaults = data.get("defaults", {})
    specs = []
    for i, table in enumerate(data.get("topic", [])):
        merged = {**defaults, **table}
        unknown = set(merged) - _TOPIC_KEYS
        if unknown:
            raise ValueError(
                f"{path}: topic #{i + 1} has unknown keys {sorted(unknown)};"
                f" allowed: {sorted(_TOPIC_KEYS)}"
            )
        specs.append(TopicSpec(**merged))
    names = [s.name for s in specs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"{path}: topics declared twice: {sorted(dupes)}")
    return specs


def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    recreate: bool = False,
    timeout_s: float = 60.0,
    client_config: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Make every topic exist as specified; returns topic → what was done.

    Missing topics are created. Existing ones keep their data: their configs are set to the spec
    and partitions added when the spec has more (Kafka cannot remove partitions; that is reported).
    ``recreate`` deletes and creates them afresh (data lost). Returns only when the metadata shows
    every topic with a leader for each partition, or raises after ``timeout_s``. ``client_config``:
    librdkafka security settings of an admin (secured stack).
    """
    specs = list(specs)
    admin = admin_client(bootstrap_servers, **(client_config or {}))
    deadline = time.monotonic() + timeout_s
    existing = admin.list_topics(timeout=timeout_s).topics
    done: dict[str, str] = {}
    if recreate:
        doomed = [s.name for s in specs if s.name in existing]
        if doomed:
            futures = admin.delete_topics(doomed, operation_timeout=timeout_s)
            _wait_futures(futures, deadline, "delete")
            _wait_for(
                lambda: _on_every_broker(
                    bootstrap_servers,
                    lambda a: not set(doomed) & set(a.list_topics(timeout=5).topics),
                    client_config,
                ),
                deadline,
                f"deletion of topics {doomed} on every broker",
            )
            existing = admin.list_topics(timeout=timeout_s).topics
    to_create = [s for s in specs if s.name not in existing]
    if to_create:
        futures = admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=s.replication if s.replication is not None else -1,
                    config=s.topic_config(),
                )
                for s in to_create
            ],
            operation_timeout=timeout_s,
        )
        _wait_futures(futures, deadline, "create", ignore_exists=True)
        done.update({s.name: "created" for s in to_create})
    for spec in specs:
        if spec.name in done:
            continue
        actions = []
        have = len(existing[spec.name].partitions)
        if spec.partitions > have:
            _wait_futures(
                admin.create_partitions([NewPartitions(spec.name, spec.partitions)]),
                deadline,
                "add partitions",
            )
            actions.append(f"partitions {have}->{spec.partitions}")
        elif spec.partitions < have:
            actions.append(f"has {have} partitions > {spec.partitions} (Kafka cannot shrink)")
        cfg = spec.topic_config()
        if cfg:
            resource = ConfigResource(
                "topic",
                spec.name,
                incremental_configs=[
                    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                    for k, v in cfg.items()
                ],
            )
            _wait_futures(admin.incremental_alter_configs([resource]), deadline, "alter configs")
            actions.append("configs set")
        done[spec.name] = "exists" + (f" ({', '.join(actions)})" if actions else "")
    wanted = {s.name: s.partitions for s in specs}
    # Every broker, not just the one that answered: in KRaft each broker applies the metadata log
    # at its own pace, and a client asking a broker that lags sees no such topic (a 3-broker
    # stack's test once read the metadata from such a broker right after this returned).
    _wait_for(
        lambda: _on_every_broker(bootstrap_servers, lambda a: _all_led(a, wanted), client_config),
        deadline,
        f"leaders for every partition of {sorted(wanted)} on every broker",
    )
    return done


def _on_every_broker(
    bootstrap_servers: str,
    pred: Callable[[AdminClient], bool],
    client_config: Mapping[str, str] | None = None,
) -> bool:
    """``pred`` holds for the metadata of each bootstrap address asked on its own.

    A fresh client knows only its bootstrap broker until its first metadata answer, so its first
    request goes to that broker.
    """
    config = client_config or {}
    return all(
        pred(admin_client(address.strip(), **config)) for address in bootstrap_servers.split(",")
    )


def delete_topics(
    bootstrap_servers: str,
    names: Sequence[str],
    timeout_s: float = 30.0,
    client_config: Mapping[str, str] | None = None,
) -> None:
    """Delete ``names`` (missing ones ignored) and wait until the metadata no longer lists them."""
    admin = admin_client(bootstrap_servers, **(client_config or {}))
    deadline = time.monotonic() + timeout_s
    present = [n for n in names if n in admin.list_topics(timeout=timeout_s).topics]
    if present:
        _wait_futures(admin.delete_topics(present, operation_timeout=timeout_s), deadline, "delete")
        _wait_for(
            lambda: _on_every_broker(
                bootstrap_servers,
                lambda a: not set(present) & set(a.list_topics(timeout=5).topics),
                client_config,
            ),
            deadline,
            f"deletion of topics {present} on every broker",
        )


def _all_led(admin: AdminClient, wanted: Mapping[str, int]) -> bool:
    topics = admin.list_topics(timeout=5).topics
    for name, partitions in wanted.items():
        meta = topics.get(name)
        if meta is None or meta.error is not None or len(meta.partitions) < partitions:
            return False
        if any(p.leader < 0 for p in meta.partitions.values()):
            return False
    return True


def _wait_futures(
    futures: Mapping, deadline: float, what: str, ignore_exists: bool = False
) -> None:
    for key, fut in futures.items():
        try:
            fut.result(timeout=max(1.0, deadline - time.monotonic()))
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if ignore_exists and getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                continue  # created concurrently by someone else: fine
            raise RuntimeError(f"Kafka {what} failed for {key}: {exc}") from exc
        except TimeoutError as exc:
            raise RuntimeError(f"timed out waiting for Kafka {what} of {key}") from exc


def _wait_for(pred, deadline: float, what: str) -> None:
    while True:
        try:
            if pred():
                return
        except KafkaException:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)
