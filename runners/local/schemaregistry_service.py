"""The schema registry's plan: ``python -m runners.schemaregistry`` on loopback."""

from __future__ import annotations

from collections.abc import Mapping

from runners.local.plan import Plan, python_http_service
from runners.local.services import REPO_ROOT, SCHEMA_REGISTRY
from runners.local.stack import StackPaths


def plan_schema_registry(paths: StackPaths, ports: Mapping[str, int]) -> Plan:
    return python_http_service("runners.schemaregistry", SCHEMA_REGISTRY, paths, ports, REPO_ROOT)
