"""What ``up`` is asked for: ``UpOptions``, the services it resolves to (dependencies included)
and the ports each service's roles get (defaults, overrides, free-port fallback)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from runners._ports import choose_port, free_port
from runners.local.flink_services import flink_cluster_port_defaults
from runners.local.kafka_service import kafka_port_defaults
from runners.local.services import (
    ALL_SERVICES,
    DEFAULT_PORTS,
    DEFAULT_SERVICES,
    DEPENDS_ON,
    FLINK_CLUSTER,
    FLINK_JOB_SERVER,
    KAFKA,
)


@dataclass(frozen=True)
class UpOptions:
    """What ``up`` was asked for beyond service names."""

    brokers: int = 1
    port_overrides: Mapping[str, int] = field(default_factory=dict)
    """``service`` or ``service.role`` → port; 0 means any free port; a non-zero port is strict."""
    flink_master: str = "[local]"
    create_topics: bool = True
    secure: bool = False
    """Kafka with SASL_SSL, SCRAM-SHA-512, TLS and ACLs (``runners.security``)."""
    proxied: bool = False
    """Each broker gets a second client listener advertised at a port for a TCP proxy
    (``Stack.proxy_routes``): the fault suite puts Toxiproxy there."""
    taskmanagers: int = 1
    """TaskManagers of the Flink session cluster (separate JVMs, ``slots`` task slots each)."""
    slots: int = 2

    def __post_init__(self) -> None:
        if self.brokers not in (1, 3):
            raise ValueError(f"--brokers must be 1 or 3, got {self.brokers}")
        if not 1 <= self.taskmanagers <= 8:
            raise ValueError(f"--taskmanagers must be 1 to 8, got {self.taskmanagers}")
        if not 1 <= self.slots <= 16:
            raise ValueError(f"--slots must be 1 to 16, got {self.slots}")
        if self.proxied and self.secure:
            raise ValueError("a proxied listener is for the unsecured stack only")


def resolve_services(names: Iterable[str] | None, *, flink: bool = False) -> list[str]:
    """Requested names (default set when empty) plus their dependencies, in start order."""
    wanted = set(names or DEFAULT_SERVICES)
    if flink:
        wanted.add(FLINK_JOB_SERVER)
    unknown = wanted - set(ALL_SERVICES)
    if unknown:
        raise ValueError(f"unknown service(s) {sorted(unknown)}; choose from {list(ALL_SERVICES)}")
    for name in list(wanted):
        wanted.update(DEPENDS_ON.get(name, ()))
    return [s for s in ALL_SERVICES if s in wanted]


def desired_ports(service: str, options: UpOptions) -> dict[str, tuple[int, bool]]:
    """role → (preferred port, strict) after overrides.

    ``service.role=P`` pins one role; ``service=P`` pins the service's first role (Kafka: the
    first broker); ``service=0`` lets every role of the service take any free port.
    """
    if service == KAFKA:
        defaults = kafka_port_defaults(options.brokers, options.proxied)
    elif service == FLINK_CLUSTER:
        defaults = flink_cluster_port_defaults(options.taskmanagers)
    else:
        defaults = dict(DEFAULT_PORTS[service])
    first_role = next(iter(defaults))
    whole = options.port_overrides.get(service)
    out: dict[str, tuple[int, bool]] = {}
    for role, port in defaults.items():
        override = options.port_overrides.get(f"{service}.{role}")
        if override is None and whole is not None and (whole == 0 or role == first_role):
            override = whole
        if override is None:
            out[role] = (port, False)
        else:
            out[role] = (override, override != 0)
    return out


def choose_ports(service: str, options: UpOptions, taken: set[int]) -> dict[str, int]:
    """Ports for every role of ``service``, none of them in ``taken`` (which grows)."""
    chosen: dict[str, int] = {}
    for role, (preferred, strict) in desired_ports(service, options).items():
        if preferred == 0:
            port = free_port(avoid=taken)
        else:
            port = choose_port(preferred, strict=strict, taken=taken, what=f"{service}.{role}")
        chosen[role] = port
        taken.add(port)
    return chosen
