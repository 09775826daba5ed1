"""Start and stop the market-data service and a Redis server as real processes on loopback.

Used by the tests and ``bench/enrichment.py`` (the local stack has its own supervisor). Each
process gets a free port, is health-checked with a deadline and stopped (SIGTERM, then SIGKILL
after a timeout) on exit.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from runners.marketdata.dataset import MarketDataset

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


@dataclass
class MarketDataServer:
    """A running ``python -m runners.marketdata``; ``url`` is its base URL."""

    host: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Change the faults of the running server (``reset=True`` starts from a healthy one)."""
        response = requests.post(f"{self.url}/admin/faults", json=faults, timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def stats(self, settle_timeout_s: float = 30.0) -> dict[str, Any]:
        """Requests answered since the last reset, by status, once none is still in flight.

        A client that gave up on a slow call (its timeout) has counted the call already; waiting
        for the server to finish answering it makes both sides count the same calls. TimeoutError
        when requests are still in flight after ``settle_timeout_s``.
        """
        deadline = time.monotonic() + settle_timeout_s
        while True:
            response = requests.get(f"{self.url}/admin/stats", timeout=5)
            response.raise_for_status()
            stats = dict(response.json())
            in_flight = stats.pop("in_flight", 0)
            if not in_flight:
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{in_flight} market-data requests still in flight after {settle_timeout_s} s"
                )
            time.sleep(0.05)

    def reset(self) -> None:
        """As good as a fresh server: healthy, fault draws reseeded, statistics of a new period
        (answers to requests sent before the reset are never counted in it)."""
        requests.post(f"{self.url}/admin/reset", timeout=5).raise_for_status()

    def stop(self) -> None:
        _stop(self.proc)


def served_dataset(url: str, timeout_s: float = 5.0) -> MarketDataset:
    """The dataset a running market-data service serves (its seed and zip count, from
    ``/healthz``), regenerated here: what the pipeline's enriched events must carry."""
    health = requests.get(f"{url.rstrip('/')}/healthz", timeout=timeout_s)
    health.raise_for_status()
    body = health.json()
    return MarketDataset.generate(seed=int(body["seed"]), zip_count=int(body["zip_count"]))


@contextlib.contextmanager
def market_data_server(
    *extra_args: str, port: int | None = None, start_timeout_s: float = 30.0
) -> Iterator[MarketDataServer]:
    """Run the service (with extra CLI flags) until the block ends."""
    port = port or free_port()
    with tempfile.NamedTemporaryFile(prefix="marketdata-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "runners.marketdata"),
                *("--host", "127.0.0.1", "--port", str(port)),
                *extra_args,
            ],
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = MarketDataServer("127.0.0.1", port, proc, log_path)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"market-data service exited with {proc.returncode}: {log_path.read_text()}"
                )
            try:
                if requests.get(f"{server.url}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"market-data service not healthy after {start_timeout_s} s")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()


@dataclass
class RedisServer:
    host: str
    port: int
    proc: subprocess.Popen[bytes]


def redis_server_binary() -> str:
    """The redis-server path, or RuntimeError saying how to install it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server not found: install it (apt-get install -y redis-server) or put it on PATH"
        )
    return binary


@contextlib.contextmanager
def redis_server(start_timeout_s: float = 15.0) -> Iterator[RedisServer]:
    """Run a throw-away redis-server on loopback (no persistence) until the block ends."""
    import redis  # the redis client is a runtime dependency; imported here to keep startup light

    port = free_port()
    proc = subprocess.Popen(
        [
            *(redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port)),
            *("--save", "", "--appendonly", "no", "--protected-mode", "yes"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer("127.0.0.1", port, proc)
    try:
        deadline = time.monotonic() + start_timeout_s
        client = redis.Redis(server.host, server.port, socket_timeout=1)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}")
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server not answering after {start_timeout_s} s")
            time.sleep(0.05)
        client.close()
        yield server
    finally:
        _stop(proc)
