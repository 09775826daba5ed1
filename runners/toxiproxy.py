"""Toxiproxy on loopback: a TCP proxy that injects network faults, driven by its HTTP API.

The fault suite puts it between the pipeline and Kafka: the broker has a second listener for
the pipeline that it advertises at the proxy's port (``runners.local.UpOptions.proxied``), so the
Kafka clients' reconnections to the advertised address go through the proxy too, while the
broker's own traffic and the test's clients stay on the direct listener.

``ToxiproxyServer`` starts ``.local/bin/toxiproxy-server`` (``make setup`` builds it) on a free
loopback port and stops it when the block ends; ``Toxiproxy`` is a small client of its HTTP API
(https://github.com/Shopify/toxiproxy#http-api): proxies, toxics (``latency``, ``bandwidth``,
``timeout``, ``reset_peer``...), enabling and disabling a proxy.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners import _procs
from runners._ports import LOOPBACK, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
BINARY = REPO_ROOT / ".local" / "bin" / "toxiproxy-server"
START_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0


class ToxiproxyError(RuntimeError):
    """The Toxiproxy server is missing, did not start, or refused a request."""


@dataclass(frozen=True)
class Toxiproxy:
    """A client of one Toxiproxy server's HTTP API at ``api_url``."""

    api_url: str

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.api_url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as reply:
                text = reply.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ToxiproxyError(f"{method} {path}: HTTP {exc.code} {detail}") from exc
        return json.loads(text) if text.strip() else None

    def version(self) -> str:
        request = urllib.request.Request(f"{self.api_url}/version")
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as reply:
            return reply.read().decode().strip()

    def create_proxy(self, name: str, listen: str, upstream: str) -> None:
        """A proxy ``name`` accepting on ``listen`` (host:port) and forwarding to ``upstream``."""
        self._call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream})

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Disabled, a proxy closes its connections and refuses new ones (a partition that the
        client sees as refused connections)."""
        self._call("POST", f"/proxies/{name}", {"enabled": enabled})

    def add_toxic(
        self,
        proxy: str,
        toxic: str,
        kind: str,
        attributes: dict[str, int],
        stream: str = "downstream",
        toxicity: float = 1.0,
    ) -> None:
        """Add toxic ``toxic`` of type ``kind`` (``latency``: ``latency``/``jitter`` ms;
        ``bandwidth``: ``rate`` KB/s; ``timeout``: ``timeout`` ms, 0 = hold the data and never
        close; ``reset_peer``: ``timeout`` ms then TCP RST) on ``stream`` (``downstream``: from
        the upstream to the client, ``upstream``: the other way)."""
        self._call(
            "POST",
            f"/proxies/{proxy}/toxics",
            {
                "name": toxic,
                "type": kind,
                "stream": stream,
                "toxicity": toxicity,
                "attributes": attributes,
            },
        )

    def remove_toxic(self, proxy: str, toxic: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{toxic}")

    def reset(self) -> None:
        """Every proxy enabled again, every toxic removed."""
        self._call("POST", "/reset")


@contextlib.contextmanager
def server(log_path: Path, binary: Path = BINARY) -> Iterator[Toxiproxy]:
    """A Toxiproxy server of its own on a free loopback port, logging to ``log_path``; stopped
    (with every connection it proxies) when the block ends."""
    if not binary.exists():
        raise ToxiproxyError(f"{binary} is missing: run `make setup` (it builds Toxiproxy)")
    port = free_port()
    spawned = _procs.spawn([str(binary), "-host", LOOPBACK, "-port", str(port)], log_path=log_path)
    try:
        client = Toxiproxy(f"http://{LOOPBACK}:{port}")

        def ready() -> bool:
            try:
                client.version()
            except OSError:
                return False
            return True

        _procs.wait_until(
            ready,
            what=f"Toxiproxy's API at {client.api_url}",
            timeout_s=START_TIMEOUT_S,
            alive=lambda: _procs.is_alive(spawned.pid, spawned.create_time),
            log_path=log_path,
        )
        yield client
    finally:
        _procs.stop(spawned.pid, spawned.create_time)


def accepted_connections(log_path: Path) -> int:
    """How many client connections the server logging to ``log_path`` has accepted (its
    ``Accepted client`` lines): evidence that traffic went through the proxy."""
    if not log_path.exists():
        return 0
    with log_path.open(errors="replace") as log:
        return sum('"Accepted client"' in line for line in log)
