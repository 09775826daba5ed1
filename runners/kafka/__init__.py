"""The Kafka side of the local stack: KRaft broker configuration, storage formatting, a real
health check, and topic creation from ``runners/topics.toml`` (or any list of ``TopicSpec``).

The broker is Apache Kafka (version from ``runners/java/pom.xml``) run from the jars Maven copied
into ``.local/lib/kafka-broker/``. One node is a combined broker+controller; three nodes form a
static controller quorum, every node both broker and controller, with replication factor 3 and
``min.insync.replicas`` 2 as defaults for new topics.

Health is a metadata request answered by every expected broker (confluent-kafka's AdminClient),
never a sleep.

The package: ``broker`` (node configuration, storage format) and ``admin`` (health, topics).
"""

from __future__ import annotations

from runners.kafka.admin import (
    TOPICS_TOML,
    TopicSpec,
    admin_client,
    brokers_ready,
    cluster_metadata,
    delete_topics,
    ensure_topics,
    load_topics,
)
from runners.kafka.broker import (
    KAFKA_MAIN,
    LOG4J2_XML,
    STORAGE_TOOL,
    KafkaNode,
    broker_properties,
    format_storage,
    java_options,
    new_cluster_id,
)

__all__ = [
    "KAFKA_MAIN",
    "LOG4J2_XML",
    "STORAGE_TOOL",
    "TOPICS_TOML",
    "KafkaNode",
    "TopicSpec",
    "admin_client",
    "broker_properties",
    "brokers_ready",
    "cluster_metadata",
    "delete_topics",
    "ensure_topics",
    "format_storage",
    "java_options",
    "load_topics",
    "new_cluster_id",
]
