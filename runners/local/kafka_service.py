"""Kafka's plan: a KRaft cluster of 1 or 3 combined nodes, formatted once and kept with its data,
optionally secured (SASL_SSL, SCRAM-SHA-512, TLS; ``runners.security``)."""

from __future__ import annotations

from collections.abc import Mapping

from runners import kafka as kafka_admin
from runners import security as kafka_security
from runners._ports import LOOPBACK
from runners.local.plan import Plan, Proc, java_binary
from runners.local.services import KAFKA
from runners.local.stack import StackPaths


def kafka_port_defaults(brokers: int, proxied: bool = False) -> dict[str, int]:
    ports: dict[str, int] = {}
    for i in range(1, brokers + 1):
        ports[f"broker-{i}"] = 9092 + 2 * (i - 1)
        ports[f"controller-{i}"] = 9093 + 2 * (i - 1)
        if proxied:  # any free ports: the listener for a proxy, and the proxy's advertised one
            ports[f"proxied-{i}"] = 0
            ports[f"proxy-{i}"] = 0
    return ports


def plan_kafka(
    paths: StackPaths, ports: Mapping[str, int], brokers: int, secure: bool = False
) -> Plan:
    java = java_binary()
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
            proxied_port=ports.get(f"proxied-{i}"),
            proxy_port=ports.get(f"proxy-{i}"),
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
        procs.append(Proc(role=f"node-{node.node_id}", argv=argv, log=log))
    bootstrap = ",".join(f"{LOOPBACK}:{n.broker_port}" for n in nodes)
    return Plan(
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
