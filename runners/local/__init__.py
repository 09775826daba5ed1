"""The local stack: a small process supervisor for everything Beam needs on this machine.

Services (started in this order, each health-checked before the next):

=================  ===========================================================  ==============
service            what                                                         default ports
=================  ===========================================================  ==============
kafka              Apache Kafka, KRaft, 1 combined node (or ``--brokers 3``)    9092 (+9093)
java-workers       Beam's Java SDK worker pool (EXTERNAL environment)           5555
expansion-service  Beam's expansion service with Kafka IO, EXTERNAL env         8097
flink-cluster      Flink session cluster: JobManager + TaskManager(s) (opt-in,  8081, 6123, 9249/50
                   ``--taskmanagers N``, ``--slots S``)                         (+9251...)
flink-job-server   Beam's Flink job server (opt-in): embedded Flink, or the     8099, 8098
                   session cluster when flink-cluster runs
python-workers     Beam's Python SDK worker pool (opt-in): one worker process   50000
                   per environment Flink asks for (``--environment_type=
                   EXTERNAL``), instead of the submitting process (LOOPBACK)
redis              redis-server, loopback, no persistence                      6379
marketdata         ``python -m runners.marketdata``                            8700
schema-registry    ``python -m runners.schemaregistry`` (opt-in): Confluent's    8085
                   registry API, catalog schemas at their ids
prometheus         Prometheus (opt-in) scraping the session cluster's           9090
                   reporters, alert rules of runners/prometheus/
=================  ===========================================================  ==============

A default port that is taken falls back to a free one (recorded); a port named with ``--port``
is strict. What runs where lives in ``.local/state/stack.json``; read it through ``Stack.load()``.
Logs: ``.local/logs/<service>.log``; pid files: ``.local/run/<service>.pid``.

The package: ``services`` (names, order, ports, time limits), ``stack`` (the ``Stack`` view),
``plan`` and one planner per service kind (``kafka_service``, ``beam_services``,
``flink_services``, ``redis_service``, ``marketdata_service``, ``schemaregistry_service``,
``prometheus_service``), ``options`` (what ``up`` is asked for), ``launch`` (lock, spawn,
waves), ``supervisor`` (up, down, kill, restart) and ``cli``.

CLI::

    python -m runners.local up [SERVICE...] [--flink] [--brokers 3] [--secure] [--port kafka=19092]
                               [--taskmanagers 2] [--slots 2]
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

from runners._ports import PortInUseError
from runners._procs import StartupError
from runners.local.options import UpOptions, resolve_services
from runners.local.services import (
    ALL_SERVICES,
    DEFAULT_SERVICES,
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
    SCHEMA_REGISTRY,
)
from runners.local.stack import ServiceNotRunning, Stack, StackError, StackPaths
from runners.local.supervisor import (
    down,
    ensure_up,
    kill_process,
    restart_process,
    status_lines,
    up,
)

__all__ = [
    "ALL_SERVICES",
    "DEFAULT_SERVICES",
    "EXPANSION_SERVICE",
    "FLINK_CLUSTER",
    "FLINK_EXPANSION_SERVICE",
    "FLINK_JOB_SERVER",
    "HOME_ENV",
    "JAVA_WORKERS",
    "KAFKA",
    "MARKETDATA",
    "PROMETHEUS",
    "PYTHON_WORKERS",
    "REDIS",
    "SCHEMA_REGISTRY",
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
