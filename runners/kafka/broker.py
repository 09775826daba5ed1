"""A KRaft broker's configuration and storage: one ``KafkaNode`` per process (combined broker and
controller), its ``server.properties``, JVM options and the one-time storage format."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

KAFKA_MAIN = "kafka.Kafka"


STORAGE_TOOL = "kafka.tools.StorageTool"


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
