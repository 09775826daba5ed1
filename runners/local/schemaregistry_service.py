"""The schema registry's plan: ``python -m runners.schemaregistry`` on loopback."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from runners._ports import LOOPBACK
from runners.local.plan import Plan, Proc, http_ready
from runners.local.services import REPO_ROOT, SCHEMA_REGISTRY
from runners.local.stack import StackPaths


def plan_schema_registry(paths: StackPaths, ports: Mapping[str, int]) -> Plan:
    argv = [
        sys.executable,
        "-m",
        "runners.schemaregistry",
        "--host",
        LOOPBACK,
        "--port",
        str(ports["http"]),
    ]
    url = f"http://{LOOPBACK}:{ports['http']}/healthz"
    return Plan(
        processes=[Proc("main", argv, paths.log(SCHEMA_REGISTRY), cwd=REPO_ROOT)],
        ready=http_ready(url),
        ready_what=f"HTTP 200 from {url}",
    )
