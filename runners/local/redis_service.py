"""Redis's plan: ``redis-server`` on loopback without persistence (the enrichment cache)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping

from runners._ports import LOOPBACK
from runners.local.plan import Plan, Proc, redis_ready
from runners.local.services import REDIS
from runners.local.stack import StackError, StackPaths


def plan_redis(paths: StackPaths, ports: Mapping[str, int]) -> Plan:
    server = shutil.which("redis-server")
    if server is None:
        raise StackError(
            "redis-server not found: run `make setup` (it runs apt-get install -y redis-server)"
        )
    workdir = paths.data(REDIS)
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        server,
        "--port",
        str(ports["redis"]),
        "--bind",
        LOOPBACK,
        "--dir",
        str(workdir),
        # A cache for the enrichment step: nothing to keep across restarts.
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]
    return Plan(
        processes=[Proc("main", argv, paths.log(REDIS))],
        ready=redis_ready(ports["redis"]),
        ready_what=f"redis PING on {LOOPBACK}:{ports['redis']}",
    )
