"""``runners/security.toml`` read and checked: the users (SCRAM) and the ACLs each is granted."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

SECURITY_TOML = Path(__file__).resolve().parents[1] / "security.toml"


SCRAM_MECHANISM = "SCRAM-SHA-512"


BROKER_USER = "broker"


SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"


CLUSTER_RESOURCE = "kafka-cluster"


_RESOURCES = ("topic", "group", "cluster")


_PATTERNS = ("literal", "prefixed")


@dataclass(frozen=True)
class User:
    name: str
    super_user: bool = False


@dataclass(frozen=True)
class AclSpec:
    """ALLOW ``operations`` on ``names`` of ``resource`` to ``User:<user>``, from any host."""

    user: str
    resource: str
    names: tuple[str, ...]
    operations: tuple[str, ...]
    pattern: str = "literal"


@dataclass(frozen=True)
class SecurityConfig:
    users: tuple[User, ...]
    acls: tuple[AclSpec, ...]

    @property
    def super_users(self) -> list[str]:
        return [u.name for u in self.users if u.super_user]


def load_security(path: Path = SECURITY_TOML) -> SecurityConfig:
    """Users and ACLs of ``path``; ``ValueError`` naming the entry when one is wrong."""
    from confluent_kafka.admin import AclOperation

    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    users = []
    for i, table in enumerate(data.get("user", [])):
        unknown = set(table) - {"name", "super_user"}
        if unknown or not table.get("name"):
            raise ValueError(f"{path}: user #{i + 1} needs a name; unknown keys {sorted(unknown)}")
        if table["name"] == BROKER_USER:
            raise ValueError(f"{path}: the user name {BROKER_USER!r} is reserved for the broker")
        users.append(User(table["name"], bool(table.get("super_user", False))))
    names = {u.name for u in users}
    acls = []
    for i, table in enumerate(data.get("acl", [])):
        where = f"{path}: acl #{i + 1}"
        unknown = set(table) - {"user", "resource", "names", "pattern", "operations"}
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}")
        if table.get("user") not in names:
            raise ValueError(f"{where}: user {table.get('user')!r} is not a [[user]] of the file")
        if table.get("resource") not in _RESOURCES:
            raise ValueError(f"{where}: resource must be one of {_RESOURCES}")
        pattern = table.get("pattern", "literal")
        if pattern not in _PATTERNS:
            raise ValueError(f"{where}: pattern must be one of {_PATTERNS}")
        ops = tuple(table.get("operations", ()))
        bad = [op for op in ops if op not in AclOperation.__members__]
        if not ops or bad:
            raise ValueError(
                f"{where}: operations {bad or ops} are not Kafka ACL operations"
                f" ({', '.join(AclOperation.__members__)})"
            )
        acl_names = tuple(table.get("names", ()))
        if not acl_names:
            raise ValueError(f"{where}: names is empty")
        acls.append(AclSpec(table["user"], table["resource"], acl_names, ops, pattern))
    return SecurityConfig(tuple(users), tuple(acls))
