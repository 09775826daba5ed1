"""Prometheus's plan: Debian's ``prometheus`` on loopback, scraping the recorded Flink session
cluster's reporters with the alert rules of ``runners/prometheus/alerts.rules.yml``
(``runners.prometheus`` writes the configuration)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping

from runners import prometheus
from runners._ports import LOOPBACK
from runners._state import ServiceRecord
from runners.local.plan import Plan, Proc, http_ready
from runners.local.services import PROMETHEUS
from runners.local.stack import StackError, StackPaths


def plan_prometheus(
    paths: StackPaths, ports: Mapping[str, int], state: Mapping[str, ServiceRecord]
) -> Plan:
    """Config written into the service's directory, data kept there 2 days; the targets are
    recorded, so that ``up`` restarts Prometheus when the cluster it scrapes changed."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise StackError(
            "prometheus not found: run `make setup` (it runs apt-get install -y prometheus)"
        )
    workdir = paths.data(PROMETHEUS)
    workdir.mkdir(parents=True, exist_ok=True)
    targets = prometheus.scrape_targets(state)
    conf = workdir / "prometheus.yml"
    conf.write_text(json.dumps(prometheus.config(targets), indent=2) + "\n")
    address = f"{LOOPBACK}:{ports['http']}"
    argv = [
        binary,
        f"--config.file={conf}",
        f"--storage.tsdb.path={workdir / 'data'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address={address}",
    ]
    return Plan(
        processes=[Proc("main", argv, paths.log(PROMETHEUS))],
        ready=http_ready(f"http://{address}/-/ready"),
        ready_what=f"HTTP 200 from http://{address}/-/ready",
        extra={"targets": targets},
    )
