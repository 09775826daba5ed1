"""Plans of Beam's Java services: the SDK worker pool (the EXTERNAL environment Kafka IO runs in)
and the expansion service that points cross-language transforms at it."""

from __future__ import annotations

import json
from collections.abc import Mapping

from runners._state import ServiceRecord
from runners.local.plan import Plan, Proc, grpc_ready, java_binary
from runners.local.services import EXPANSION_SERVICE, JAVA_WORKERS
from runners.local.stack import StackPaths


def plan_java_workers(paths: StackPaths, ports: Mapping[str, int]) -> Plan:
    address = f"localhost:{ports['grpc']}"
    # The pool listens where its own options say the EXTERNAL environment lives.
    options = {
        "options": {"defaultEnvironmentType": "EXTERNAL", "defaultEnvironmentConfig": address}
    }
    argv = [
        java_binary(),
        "-Xmx2g",
        "-cp",
        paths.classpath("expansion-service"),
        "org.apache.beam.fn.harness.ExternalWorkerService",
    ]
    return Plan(
        processes=[
            Proc(
                "main",
                argv,
                paths.log(JAVA_WORKERS),
                env={"PIPELINE_OPTIONS": json.dumps(options)},
            )
        ],
        ready=grpc_ready(address),
        ready_what=f"the Java worker pool's gRPC endpoint {address}",
    )


def plan_expansion_service(
    paths: StackPaths, ports: Mapping[str, int], running: Mapping[str, ServiceRecord]
) -> Plan:
    workers = f"localhost:{running[JAVA_WORKERS].ports['grpc']}"
    address = f"localhost:{ports['grpc']}"
    # The environment's artifacts: by default the service's whole classpath, which the Python SDK
    # downloads and hashes again for each cross-language transform at submission (the cost:
    # docs/performance.md, section 5). The
    # EXTERNAL worker pool already runs with every jar on its classpath, so one small file is
    # staged instead.
    staged = paths.data(EXPANSION_SERVICE) / "staged.txt"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text("Kafka IO runs in the EXTERNAL Java worker pool, on its own classpath.\n")
    argv = [
        java_binary(),
        "-Xmx1g",
        "-cp",
        paths.classpath("expansion-service"),
        "org.apache.beam.sdk.expansion.service.ExpansionService",
        str(ports["grpc"]),
        "--defaultEnvironmentType=EXTERNAL",
        f"--defaultEnvironmentConfig={workers}",
        f"--filesToStage={staged}",
    ]
    return Plan(
        processes=[Proc("main", argv, paths.log(EXPANSION_SERVICE))],
        ready=grpc_ready(address),
        ready_what=f"the expansion service's gRPC endpoint {address}",
        extra={"environment": f"EXTERNAL {workers}"},
    )
