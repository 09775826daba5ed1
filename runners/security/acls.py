"""The ACLs of ``runners/security.toml`` as Kafka ACL bindings, applied through the admin API."""

from __future__ import annotations

from collections.abc import Sequence

from runners.security.config import SecurityConfig


def acl_bindings(config: SecurityConfig) -> list:
    """The ``AclBinding``s of ``config`` (ALLOW, any host)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    out = []
    for acl in config.acls:
        for name in acl.names:
            for op in acl.operations:
                out.append(
                    AclBinding(
                        # confluent-kafka names Kafka's CLUSTER resource BROKER.
                        ResourceType.BROKER
                        if acl.resource == "cluster"
                        else ResourceType[acl.resource.upper()],
                        name,
                        ResourcePatternType[acl.pattern.upper()],
                        f"User:{acl.user}",
                        "*",
                        AclOperation[op],
                        AclPermissionType.ALLOW,
                    )
                )
    return out


def apply_acls(admin, bindings: Sequence, timeout_s: float = 30.0) -> int:
    """Create ``bindings`` (existing ones are left as they are) and return how many were sent,
    once the broker's authorizer enforces them all.

    ``CreateAcls`` returns when the controller has committed the ACLs; the broker's authorizer
    applies them when it replays the metadata log, a moment later (seen: a read right after
    ``up`` denied). So this waits until ``DescribeAcls``, answered from the broker's authorizer,
    lists every binding.
    """
    import time

    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    if not bindings:
        return 0
    for binding, future in admin.create_acls(list(bindings), request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:
            raise RuntimeError(f"creating ACL {binding} failed: {exc}") from exc
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    wanted = set(bindings)
    deadline = time.monotonic() + timeout_s
    while True:
        seen = set(admin.describe_acls(everything, request_timeout=timeout_s).result(timeout_s))
        missing = wanted - seen
        if not missing:
            return len(bindings)
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{len(missing)} ACLs not enforced by the broker {timeout_s:.0f}s after creation,"
                f" e.g. {sorted(map(str, missing))[:3]}"
            )
        time.sleep(0.2)
