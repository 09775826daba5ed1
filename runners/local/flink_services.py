"""Flink's plans: Beam's Flink job server (embedded Flink, or the session cluster when it runs)
and the session cluster itself (JobManager + TaskManager, ``runners.flink_cluster``)."""

from __future__ import annotations

from collections.abc import Mapping

from runners.local.plan import Plan, Proc, grpc_ready, java_binary
from runners.local.services import FLINK_CLUSTER, FLINK_JOB_SERVER
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


def plan_flink_job_server(paths: StackPaths, ports: Mapping[str, int], flink_master: str) -> Plan:
    artifacts = paths.data(FLINK_JOB_SERVER) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        java_binary(),
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
    return Plan(
        processes=[Proc("main", argv, paths.log(FLINK_JOB_SERVER))],
        ready=grpc_ready(address),
        ready_what=f"the Flink job server's job endpoint {address}",
        extra={"flink_master": flink_master},
    )


def plan_flink_cluster(paths: StackPaths, ports: Mapping[str, int]) -> Plan:
    from runners import flink_cluster

    procs = flink_cluster.cluster_processes(
        java_binary(),
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
    return Plan(
        processes=[
            Proc(p.role, p.argv, paths.log(f"{FLINK_CLUSTER}-{p.role}"), p.env) for p in procs
        ],
        ready=lambda: flink_cluster.taskmanagers_registered(rest, 1),
        ready_what=f"a TaskManager registered at the JobManager ({rest}/overview)",
        extra={"rest_url": rest},
    )
