"""The market-data HTTP service's plan: ``python -m runners.marketdata`` on loopback."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from runners._ports import LOOPBACK
from runners.local.plan import Plan, Proc, http_ready
from runners.local.services import MARKETDATA, REPO_ROOT
from runners.local.stack import StackPaths


def plan_marketdata(paths: StackPaths, ports: Mapping[str, int]) -> Plan:
    argv = [
        sys.executable,
        "-m",
        "runners.marketdata",
        "--host",
        LOOPBACK,
        "--port",
        str(ports["http"]),
    ]
    url = f"http://{LOOPBACK}:{ports['http']}/healthz"
    return Plan(
        processes=[Proc("main", argv, paths.log(MARKETDATA), cwd=REPO_ROOT)],
        ready=http_ready(url),
        ready_what=f"HTTP 200 from {url}",
    )


# ---------------------------------------------------------------------------------------------
# Supervisor
