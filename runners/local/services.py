"""The services of the local stack: their names, start order, dependencies, well-known ports and
start/stop time limits. Plain data, read by the planners, the supervisor and the ``Stack`` view."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HOME_ENV = "PROPERTY_STACK_HOME"

KAFKA = "kafka"
JAVA_WORKERS = "java-workers"
EXPANSION_SERVICE = "expansion-service"
FLINK_JOB_SERVER = "flink-job-server"
FLINK_CLUSTER = "flink-cluster"
#: Beam's expansion service at the Flink runner's Beam version, expanding Kafka reads to the legacy
#: unbounded read that the Flink runner runs as a native Flink source (``--kafka_read=native``).
FLINK_EXPANSION_SERVICE = "flink-expansion-service"
PYTHON_WORKERS = "python-workers"
REDIS = "redis"
MARKETDATA = "marketdata"
SCHEMA_REGISTRY = "schema-registry"
PROMETHEUS = "prometheus"

#: Start order (a dependency always comes first).
ALL_SERVICES: tuple[str, ...] = (
    KAFKA,
    JAVA_WORKERS,
    EXPANSION_SERVICE,
    FLINK_CLUSTER,
    FLINK_JOB_SERVER,
    FLINK_EXPANSION_SERVICE,
    PYTHON_WORKERS,
    REDIS,
    MARKETDATA,
    SCHEMA_REGISTRY,
    PROMETHEUS,
)
DEFAULT_SERVICES: tuple[str, ...] = (KAFKA, JAVA_WORKERS, EXPANSION_SERVICE, REDIS, MARKETDATA)
DEPENDS_ON: Mapping[str, tuple[str, ...]] = {EXPANSION_SERVICE: (JAVA_WORKERS,)}

#: Well-known ports by service and role (Kafka's are per node:
#: ``kafka_service.kafka_port_defaults``).
DEFAULT_PORTS: Mapping[str, Mapping[str, int]] = {
    JAVA_WORKERS: {"grpc": 5555},
    EXPANSION_SERVICE: {"grpc": 8097},
    FLINK_JOB_SERVER: {"job": 8099, "artifact": 8098},
    FLINK_EXPANSION_SERVICE: {"grpc": 8096},
    FLINK_CLUSTER: {"rest": 8081, "rpc": 6123, "prom-jm": 9249, "prom-tm": 9250},
    PYTHON_WORKERS: {"grpc": 50000},
    REDIS: {"redis": 6379},
    MARKETDATA: {"http": 8700},
    SCHEMA_REGISTRY: {"http": 8085},
    PROMETHEUS: {"http": 9090},
}

#: How long each service may take to become healthy (2 shared cores: JVMs start slowly).
START_TIMEOUT_S: Mapping[str, float] = {
    KAFKA: 120,
    JAVA_WORKERS: 90,
    EXPANSION_SERVICE: 120,
    FLINK_JOB_SERVER: 180,
    FLINK_EXPANSION_SERVICE: 120,
    FLINK_CLUSTER: 240,
    PYTHON_WORKERS: 60,
    REDIS: 30,
    MARKETDATA: 60,
    SCHEMA_REGISTRY: 60,
    PROMETHEUS: 60,
}
STOP_TIMEOUT_S = 20.0
LOCK_TIMEOUT_S = 600.0
