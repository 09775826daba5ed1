"""How one service is started: its processes (``Proc``), how to know it is ready (``Plan``), and
the readiness probes the planners share."""

from __future__ import annotations

import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runners._ports import LOOPBACK
from runners.local.stack import StackError, StackPaths


@dataclass(frozen=True)
class Proc:
    role: str
    argv: list[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class Plan:
    """How to start one service: its processes, how to know it is ready, facts to record."""

    processes: list[Proc]
    ready: Callable[[], bool]
    ready_what: str
    extra: Mapping[str, object] = field(default_factory=dict)


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "java not found on PATH: install a JDK 17 (apt-get install -y openjdk-17-jdk-headless)"
        )
    return java


def grpc_ready(address: str) -> Callable[[], bool]:
    def ready() -> bool:
        import grpc

        channel = grpc.insecure_channel(address)
        try:
            grpc.channel_ready_future(channel).result(timeout=2)
            return True
        except grpc.FutureTimeoutError:
            return False
        finally:
            channel.close()

    return ready


def http_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    return ready


def redis_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        import redis

        client = redis.Redis(host=LOOPBACK, port=port, socket_timeout=2, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    return ready


def python_http_service(
    module: str, service: str, paths: StackPaths, ports: Mapping[str, int], cwd: Path
) -> Plan:
    """One of the project's own HTTP services (market data, schema registry): ``python -m
    <module> --host <loopback> --port <http>``, ready when its ``/healthz`` answers 200."""
    argv = [sys.executable, "-m", module, "--host", LOOPBACK, "--port", str(ports["http"])]
    url = f"http://{LOOPBACK}:{ports['http']}/healthz"
    return Plan(
        processes=[Proc("main", argv, paths.log(service), cwd=cwd)],
        ready=http_ready(url),
        ready_what=f"HTTP 200 from {url}",
    )


def java_expansion_service(
    service: str,
    paths: StackPaths,
    port: int,
    *,
    heap: str,
    classpath: str,
    options: list[str],
    staged_note: str,
    what: str,
    environment: str,
) -> Plan:
    """Beam's Java expansion service on ``port`` with ``options`` (its environment). It stages
    one small file (``staged_note``) instead of its classpath, which the Python SDK would
    otherwise download and hash again for each cross-language transform at submission
    (docs/performance.md, section 5): the environments these services name already run with
    every jar on their classpath."""
    address = f"localhost:{port}"
    staged = paths.data(service) / "staged.txt"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text(staged_note + "\n")
    argv = [
        java_binary(),
        heap,
        "-cp",
        classpath,
        "org.apache.beam.sdk.expansion.service.ExpansionService",
        str(port),
        *options,
        f"--filesToStage={staged}",
    ]
    return Plan(
        processes=[Proc("main", argv, paths.log(service))],
        ready=grpc_ready(address),
        ready_what=f"{what}'s gRPC endpoint {address}",
        extra={"environment": environment},
    )
