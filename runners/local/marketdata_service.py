"""The market-data HTTP service's plan: ``python -m runners.marketdata`` on loopback."""

from __future__ import annotations

from collections.abc import Mapping

from runners.local.plan import Plan, python_http_service
from runners.local.services import MARKETDATA, REPO_ROOT
from runners.local.stack import StackPaths


def plan_marketdata(paths: StackPaths, ports: Mapping[str, int]) -> Plan:
    return python_http_service("runners.marketdata", MARKETDATA, paths, ports, REPO_ROOT)
