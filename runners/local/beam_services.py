"""Plans of Beam's Java services: the SDK worker pool (the EXTERNAL environment Kafka IO runs in)
and the expansion service that points cross-language transforms at it."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping

from runners._state import ServiceRecord
from runners.local.java_harness import HarnessCommand
from runners.local.plan import Plan, Proc, grpc_ready, java_binary, java_expansion_service
from runners.local.services import EXPANSION_SERVICE, JAVA_WORKERS, REPO_ROOT
from runners.local.stack import StackPaths

#: Where the Java workers' class-data sharing archives live (``runners.local.cds``).
CDS_DIR = REPO_ROOT / ".local" / "cache" / "cds"


def plan_java_workers(paths: StackPaths, ports: Mapping[str, int]) -> Plan:
    """Beam's process worker pool with a Java boot command (``runners.local.java_harness``):
    each worker a runner asks for is a JVM of its own, terminated when the runner stops it, so
    a finished or cancelled job's Kafka clients go with it (Beam's Java pool keeps them: see
    that module). The workers run with the expansion service's classpath, where Kafka IO is."""
    address = f"localhost:{ports['grpc']}"
    data = paths.data(JAVA_WORKERS)
    data.mkdir(parents=True, exist_ok=True)
    # The pipeline options each harness starts with: the EXTERNAL environment is this pool.
    options = {
        "options": {"defaultEnvironmentType": "EXTERNAL", "defaultEnvironmentConfig": address}
    }
    command_file = data / "harness-command.json"
    HarnessCommand(
        java=[
            java_binary(),
            "-Xmx1g",
            # Log lines with their time: the pool's log interleaves every worker's.
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
            "-cp",
            paths.classpath("expansion-service"),
        ],
        pipeline_options=options,
        # Each worker is a JVM start per job: the classes come from an archive the first
        # worker writes (runners.local.cds). One directory for every stack of this checkout
        # (the archive is per JDK and classpath, one writer at a time), so that a new stack home
        # (a benchmark's, a test's own stack) starts its workers from the archive an earlier
        # stack built instead of building it again while it runs (docs/performance.md, 13).
        cds_dir=str(CDS_DIR),
    ).write(command_file)
    # Beam's pool runs one executable with the boot arguments; this script adds the command file.
    boot = data / "java-harness"
    boot.write_text(
        "#!/bin/sh\n"
        f"exec {shlex.quote(sys.executable)} -m runners.local.java_harness"
        f' --harness_command={shlex.quote(str(command_file))} "$@"\n'
    )
    boot.chmod(0o755)
    argv = [
        sys.executable,
        "-m",
        "apache_beam.runners.worker.worker_pool_main",
        f"--service_port={ports['grpc']}",
        f"--container_executable={boot}",
    ]
    return Plan(
        processes=[Proc("main", argv, paths.log(JAVA_WORKERS), cwd=REPO_ROOT)],
        ready=grpc_ready(address),
        ready_what=f"the Java worker pool's gRPC endpoint {address}",
    )


def plan_expansion_service(
    paths: StackPaths, ports: Mapping[str, int], running: Mapping[str, ServiceRecord]
) -> Plan:
    workers = f"localhost:{running[JAVA_WORKERS].ports['grpc']}"
    return java_expansion_service(
        EXPANSION_SERVICE,
        paths,
        ports["grpc"],
        heap="-Xmx1g",
        classpath=paths.classpath("expansion-service"),
        options=["--defaultEnvironmentType=EXTERNAL", f"--defaultEnvironmentConfig={workers}"],
        staged_note="Kafka IO runs in the EXTERNAL Java worker pool, on its own classpath.",
        what="the expansion service",
        environment=f"EXTERNAL {workers}",
    )
