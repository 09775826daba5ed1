"""Flink's plans: Beam's Flink job server (embedded Flink, or the session cluster when it runs),
the session cluster itself (JobManager + N TaskManagers, ``runners.flink_cluster``) and Beam's
Python worker pool that the cluster's TaskManagers ask for Python workers (EXTERNAL)."""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from runners.local.plan import Plan, Proc, grpc_ready, java_binary, java_expansion_service
from runners.local.services import (
    DEFAULT_PORTS,
    FLINK_CLUSTER,
    FLINK_EXPANSION_SERVICE,
    FLINK_JOB_SERVER,
    PYTHON_WORKERS,
    REPO_ROOT,
)
from runners.local.stack import StackPaths

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


#: ``.local/lib/`` folder of Kafka IO at the Flink runner's Beam version and what it needs beyond
#: the job server's jars (``runners/java/flink-legacy-read/pom.xml``).
LEGACY_READ_LIB = "flink-legacy-read"
#: ``.local/lib/`` folder of the job server's RPC system loader
#: (``runners/java/flink-rpc-shared``): Flink's Pekko RPC classes loaded once per JVM, not once
#: per job (docs/performance.md, change 26).
RPC_SHARED_LIB = "flink-rpc-shared"


_JAR_VERSION = re.compile(r"-\d[\w.\-]*\.jar$")


def job_server_classpath(paths: StackPaths) -> str:
    """The Flink job server's classpath: its own jars, then those of Kafka IO at the runner's
    version (``make setup`` fetches them) that it lacks. The runner needs them to deserialize and
    run KafkaIO's ``UnboundedSource``, the native Flink Kafka source of ``--kafka_read=native``;
    other jobs never load them. An artifact the job server already has (another version
    included) is left out: its own wins, and a job submitted to a session cluster ships the job
    server's classpath, so only the ~40 MB it lacks are added, not the folder's ~130 MB."""
    classpath = paths.classpath("flink-job-server")
    legacy = paths.lib / LEGACY_READ_LIB
    own = {_JAR_VERSION.sub("", jar.name) for jar in (paths.lib / "flink-job-server").glob("*.jar")}
    extra = sorted(
        str(jar) for jar in legacy.glob("*.jar") if _JAR_VERSION.sub("", jar.name) not in own
    )
    return os.pathsep.join([classpath, *extra])


def plan_flink_expansion_service(paths: StackPaths, ports: Mapping[str, int]) -> Plan:
    """Beam's expansion service at the Flink runner's Beam version (2.62), for the native Kafka
    read: ``--experiments=use_deprecated_read`` makes KafkaIO expand to the legacy
    ``Read.Unbounded`` primitive, which the runner translates into a Flink source running the
    Kafka consumer inside the Flink JVM (no SDF poll loop, no wait for a bundle's end). The
    read's Java steps after the source run in the EMBEDDED environment: an in-process Java SDK
    harness of the job server, so they need no worker pool of that Beam version. The serialized
    source must be deserialized by the job server, hence the same Beam version on both sides
    (the 2.73 expansion service's classes differ: serialVersionUID mismatch)."""
    classpath = paths.classpath("flink-job-server") + os.pathsep + paths.classpath(LEGACY_READ_LIB)
    return java_expansion_service(
        FLINK_EXPANSION_SERVICE,
        paths,
        ports["grpc"],
        heap="-Xmx512m",
        classpath=classpath,
        options=["--experiments=use_deprecated_read", "--defaultEnvironmentType=EMBEDDED"],
        staged_note="The native Kafka read runs in the Flink job server, on its classpath.",
        what="the Flink-version expansion service",
        environment="EMBEDDED (in the Flink job server)",
    )


def plan_flink_job_server(paths: StackPaths, ports: Mapping[str, int], flink_master: str) -> Plan:
    artifacts = paths.data(FLINK_JOB_SERVER) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        java_binary(),
        *FLINK_ADD_OPENS,
        "-Xmx2g",
        # C1 only: a fresh job server's first job spent ~10 of its ~22 CPU-s compiling with C2,
        # and later jobs on the same JVM cost the same with or without C2 (docs/performance.md,
        # change 22).
        "-XX:TieredStopAtLevel=1",
        "-cp",
        # The shared RPC system's loader first (it wins by its priority anyway).
        paths.classpath(RPC_SHARED_LIB) + os.pathsep + job_server_classpath(paths),
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
    return Plan(
        processes=[Proc("main", argv, paths.log(FLINK_JOB_SERVER))],
        ready=grpc_ready(address),
        ready_what=f"the Flink job server's job endpoint {address}",
        extra={"flink_master": flink_master},
    )


def flink_cluster_port_defaults(taskmanagers: int) -> dict[str, int]:
    """REST, RPC, the JobManager's Prometheus reporter, then one reporter per TaskManager
    (``prom-tm``, ``prom-tm-2``, ...)."""
    ports = dict(DEFAULT_PORTS[FLINK_CLUSTER])
    for i in range(2, taskmanagers + 1):
        ports[f"prom-tm-{i}"] = ports["prom-tm"] + i - 1
    return ports


def taskmanager_prometheus_roles(taskmanagers: int) -> list[str]:
    """The port roles of the TaskManagers' Prometheus reporters, first TaskManager first."""
    return ["prom-tm"] + [f"prom-tm-{i}" for i in range(2, taskmanagers + 1)]


def plan_flink_cluster(
    paths: StackPaths, ports: Mapping[str, int], taskmanagers: int = 1, slots: int = 2
) -> Plan:
    from runners import flink_cluster

    procs = flink_cluster.cluster_processes(
        java_binary(),
        flink_cluster.distribution_dir(),
        paths.data(FLINK_CLUSTER),
        flink_cluster.ClusterPorts(
            rest=ports["rest"],
            rpc=ports["rpc"],
            prometheus_jobmanager=ports["prom-jm"],
            prometheus_taskmanagers=tuple(
                ports[r] for r in taskmanager_prometheus_roles(taskmanagers)
            ),
        ),
        log_for=lambda role: paths.log(f"{FLINK_CLUSTER}-{role}"),
        slots=slots,
    )
    rest = f"http://localhost:{ports['rest']}"
    return Plan(
        processes=[
            Proc(p.role, p.argv, paths.log(f"{FLINK_CLUSTER}-{p.role}"), p.env) for p in procs
        ],
        ready=lambda: flink_cluster.taskmanagers_registered(rest, taskmanagers),
        ready_what=f"{taskmanagers} TaskManager(s) registered at the JobManager ({rest}/overview)",
        extra={"rest_url": rest, "taskmanagers": taskmanagers, "slots": slots},
    )


def plan_python_workers(paths: StackPaths, ports: Mapping[str, int]) -> Plan:
    """Beam's Python worker pool: each environment a runner asks for (``StartWorker``) becomes
    a worker process booted by ``runners.local.python_harness``, which gives it the job's
    pipeline options from the runner's provision service (Beam's pool alone starts workers with
    none: no state cache, the job's worker options ignored). The pool's PATH starts with this
    interpreter's directory (the venv), and its working directory is the repository, so the
    workers import ``transforms`` and ``pipelines`` like the submitting process."""
    address = f"localhost:{ports['grpc']}"
    bindir = str(Path(sys.executable).parent)
    data = paths.data(PYTHON_WORKERS)
    data.mkdir(parents=True, exist_ok=True)
    # Beam's pool runs one executable with the boot arguments.
    boot = data / "python-harness"
    boot.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m runners.local.python_harness "$@"\n'
    )
    boot.chmod(0o755)
    argv = [
        sys.executable,
        "-m",
        "apache_beam.runners.worker.worker_pool_main",
        f"--service_port={ports['grpc']}",
        f"--container_executable={boot}",
    ]
    env = {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    return Plan(
        processes=[Proc("main", argv, paths.log(PYTHON_WORKERS), env=env, cwd=REPO_ROOT)],
        ready=grpc_ready(address),
        ready_what=f"the Python worker pool's gRPC endpoint {address}",
    )
