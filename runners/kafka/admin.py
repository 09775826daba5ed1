"""Kafka admin for the stack: a real health check (metadata answered by every expected broker,
never a sleep) and topics from ``runners/topics.toml`` (or any list of ``TopicSpec``) created,
extended, reconfigured or deleted, each wait bounded."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ClusterMetadata,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

TOPICS_TOML = Path(__file__).resolve().parents[1] / "topics.toml"


def admin_client(bootstrap_servers: str, **config: str | int) -> AdminClient:
    """An AdminClient for the stack (librdkafka's own logging silenced: we report errors)."""
    conf: dict[str, str | int] = {"bootstrap.servers": bootstrap_servers, "log_level": 0}
    conf.update(config)
    return AdminClient(conf)


def cluster_metadata(
    bootstrap_servers: str, timeout_s: float = 5.0, client_config: Mapping[str, str] | None = None
) -> ClusterMetadata:
    """A real metadata request; raises ``KafkaException`` when no broker answers in time."""
    return admin_client(bootstrap_servers, **(client_config or {})).list_topics(timeout=timeout_s)


def brokers_ready(
    bootstrap_servers: str,
    expected_brokers: int,
    timeout_s: float = 3.0,
    client_config: Mapping[str, str] | None = None,
) -> bool:
    """True when a metadata request answers and lists ``expected_brokers`` brokers."""
    try:
        md = cluster_metadata(bootstrap_servers, timeout_s, client_config)
    except KafkaException:
        return False
    return len(md.brokers) >= expected_brokers


@dataclass(frozen=True)
class TopicSpec:
    """A topic as ``kafka-topics --create`` would make it.

    ``replication`` None means the cluster default (1 on one broker, 3 on three). ``config`` holds
    any other topic-level settings by their Kafka names.
    """

    name: str
    partitions: int = 1
    replication: int | None = None
    retention_ms: int | None = None
    cleanup_policy: str | None = None
    config: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or any(c not in _TOPIC_CHARS for c in self.name) or len(self.name) > 249:
            raise ValueError(
                f"topic name {self.name!r} must be 1-249 chars of [a-zA-Z0-9._-]; rename it"
            )
        if self.partitions < 1:
            raise ValueError(f"topic {self.name}: partitions must be >= 1, got {self.partitions}")
        if self.replication is not None and self.replication < 1:
            raise ValueError(f"topic {self.name}: replication must be >= 1, got {self.replication}")
        if self.cleanup_policy is not None and not set(self.cleanup_policy.split(",")) <= {
            "delete",
            "compact",
        }:
            raise ValueError(
                f"topic {self.name}: cleanup_policy must be delete, compact or 'compact,delete',"
                f" got {self.cleanup_policy!r}"
            )

    def topic_config(self) -> dict[str, str]:
        """The topic-level configs to set, by Kafka name."""
        out = {k: str(v) for k, v in self.config.items()}
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        if self.cleanup_policy is not None:
            out["cleanup.policy"] = self.cleanup_policy
        return out


_TOPIC_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


_TOPIC_KEYS = {"name", "partitions", "replication", "retention_ms", "cleanup_policy", "config"}


def load_topics(path: Path = TOPICS_TOML) -> list[TopicSpec]:
    """The topics declared in ``path``: ``[defaults]`` then one ``[[topic]]`` table per topic."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    defaults = data.get("defaults", {})
    specs = []
    for i, table in enumerate(data.get("topic", [])):
        merged = {**defaults, **table}
        unknown = set(merged) - _TOPIC_KEYS
        if unknown:
            raise ValueError(
                f"{path}: topic #{i + 1} has unknown keys {sorted(unknown)};"
                f" allowed: {sorted(_TOPIC_KEYS)}"
            )
        specs.append(TopicSpec(**merged))
    names = [s.name for s in specs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"{path}: topics declared twice: {sorted(dupes)}")
    return specs


def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    recreate: bool = False,
    timeout_s: float = 60.0,
    client_config: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Make every topic exist as specified; returns topic → what was done.

    Missing topics are created. Existing ones keep their data: their configs are set to the spec
    and partitions added when the spec has more (Kafka cannot remove partitions; that is reported).
    ``recreate`` deletes and creates them afresh (data lost). Returns only when the metadata shows
    every topic with a leader for each partition, or raises after ``timeout_s``. ``client_config``:
    librdkafka security settings of an admin (secured stack).
    """
    specs = list(specs)
    admin = admin_client(bootstrap_servers, **(client_config or {}))
    deadline = time.monotonic() + timeout_s
    existing = admin.list_topics(timeout=timeout_s).topics
    done: dict[str, str] = {}
    if recreate:
        doomed = [s.name for s in specs if s.name in existing]
        if doomed:
            futures = admin.delete_topics(doomed, operation_timeout=timeout_s)
            _wait_futures(futures, deadline, "delete")
            _wait_for(
                lambda: _on_every_broker(
                    bootstrap_servers,
                    lambda a: not set(doomed) & set(a.list_topics(timeout=5).topics),
                    client_config,
                ),
                deadline,
                f"deletion of topics {doomed} on every broker",
            )
            existing = admin.list_topics(timeout=timeout_s).topics
    to_create = [s for s in specs if s.name not in existing]
    if to_create:
        futures = admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=s.replication if s.replication is not None else -1,
                    config=s.topic_config(),
                )
                for s in to_create
            ],
            operation_timeout=timeout_s,
        )
        _wait_futures(futures, deadline, "create", ignore_exists=True)
        done.update({s.name: "created" for s in to_create})
    for spec in specs:
        if spec.name in done:
            continue
        actions = []
        have = len(existing[spec.name].partitions)
        if spec.partitions > have:
            _wait_futures(
                admin.create_partitions([NewPartitions(spec.name, spec.partitions)]),
                deadline,
                "add partitions",
            )
            actions.append(f"partitions {have}->{spec.partitions}")
        elif spec.partitions < have:
            actions.append(f"has {have} partitions > {spec.partitions} (Kafka cannot shrink)")
        cfg = spec.topic_config()
        if cfg:
            resource = ConfigResource(
                "topic",
                spec.name,
                incremental_configs=[
                    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                    for k, v in cfg.items()
                ],
            )
            _wait_futures(admin.incremental_alter_configs([resource]), deadline, "alter configs")
            actions.append("configs set")
        done[spec.name] = "exists" + (f" ({', '.join(actions)})" if actions else "")
    wanted = {s.name: s.partitions for s in specs}
    # Every broker, not just the one that answered: in KRaft each broker applies the metadata log
    # at its own pace, and a client asking a broker that lags sees no such topic (a 3-broker
    # stack's test once read the metadata from such a broker right after this returned).
    _wait_for(
        lambda: _on_every_broker(bootstrap_servers, lambda a: _all_led(a, wanted), client_config),
        deadline,
        f"leaders for every partition of {sorted(wanted)} on every broker",
    )
    return done


def _on_every_broker(
    bootstrap_servers: str,
    pred: Callable[[AdminClient], bool],
    client_config: Mapping[str, str] | None = None,
) -> bool:
    """``pred`` holds for the metadata of each bootstrap address asked on its own.

    A fresh client knows only its bootstrap broker until its first metadata answer, so its first
    request goes to that broker.
    """
    config = client_config or {}
    return all(
        pred(admin_client(address.strip(), **config)) for address in bootstrap_servers.split(",")
    )


def delete_topics(
    bootstrap_servers: str,
    names: Sequence[str],
    timeout_s: float = 30.0,
    client_config: Mapping[str, str] | None = None,
) -> None:
    """Delete ``names`` (missing ones ignored) and wait until the metadata no longer lists them."""
    admin = admin_client(bootstrap_servers, **(client_config or {}))
    deadline = time.monotonic() + timeout_s
    present = [n for n in names if n in admin.list_topics(timeout=timeout_s).topics]
    if present:
        _wait_futures(admin.delete_topics(present, operation_timeout=timeout_s), deadline, "delete")
        _wait_for(
            lambda: _on_every_broker(
                bootstrap_servers,
                lambda a: not set(present) & set(a.list_topics(timeout=5).topics),
                client_config,
            ),
            deadline,
            f"deletion of topics {present} on every broker",
        )


def _all_led(admin: AdminClient, wanted: Mapping[str, int]) -> bool:
    topics = admin.list_topics(timeout=5).topics
    for name, partitions in wanted.items():
        meta = topics.get(name)
        if meta is None or meta.error is not None or len(meta.partitions) < partitions:
            return False
        if any(p.leader < 0 for p in meta.partitions.values()):
            return False
    return True


def _wait_futures(
    futures: Mapping, deadline: float, what: str, ignore_exists: bool = False
) -> None:
    for key, fut in futures.items():
        try:
            fut.result(timeout=max(1.0, deadline - time.monotonic()))
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if ignore_exists and getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                continue  # created concurrently by someone else: fine
            raise RuntimeError(f"Kafka {what} failed for {key}: {exc}") from exc
        except TimeoutError as exc:
            raise RuntimeError(f"timed out waiting for Kafka {what} of {key}") from exc


def _wait_for(pred, deadline: float, what: str) -> None:
    while True:
        try:
            if pred():
                return
        except KafkaException:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)
