"""The stack's state file (``.local/state/stack.json``): what runs, where, since when.

Written atomically (temp file + rename) under the stack lock; read by ``runners.local.Stack`` and
by anyone who needs an address (pipelines never read it: ``runners.presets`` does for them).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_VERSION = 1


@dataclass(frozen=True)
class ProcessRecord:
    """One OS process of a service (a service may have several: Kafka brokers, Flink JM + TM)."""

    pid: int
    create_time: float
    log: str
    role: str = "main"


@dataclass(frozen=True)
class ServiceRecord:
    """A running service: its processes, named ports, start time and service-specific facts."""

    name: str
    processes: tuple[ProcessRecord, ...]
    ports: dict[str, int]
    started_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The first process's pid (the only one for most services)."""
        return self.processes[0].pid

    @property
    def log(self) -> str:
        return self.processes[0].log

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["processes"] = [asdict(p) for p in self.processes]
        # Convenience for humans and shell scripts reading the file.
        data["pid"] = self.pid
        data["log_path"] = self.log
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceRecord:
        return cls(
            name=data["name"],
            processes=tuple(ProcessRecord(**p) for p in data["processes"]),
            ports={k: int(v) for k, v in data["ports"].items()},
            started_at=data["started_at"],
            extra=dict(data.get("extra", {})),
        )


def load_state(path: Path) -> dict[str, ServiceRecord]:
    """Service name → record; empty when the file does not exist yet."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"{path} is not valid JSON ({exc}); run `python -m runners.local down` and"
            " delete it if it persists"
        ) from exc
    if raw.get("version") != STATE_VERSION:
        raise RuntimeError(
            f"{path} has state version {raw.get('version')}, expected {STATE_VERSION};"
            " stop the stack with the code that wrote it, or delete the file"
        )
    return {name: ServiceRecord.from_json(rec) for name, rec in raw.get("services", {}).items()}


def save_state(path: Path, services: dict[str, ServiceRecord]) -> None:
    """Replace the state file atomically with ``services``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": STATE_VERSION,
        "services": {name: rec.to_json() for name, rec in sorted(services.items())},
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stack.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
