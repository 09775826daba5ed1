"""Loopback port selection for the local stack.

Services prefer their well-known port (9092 for Kafka, 8097 for the expansion service, ...) so that
addresses are predictable, and fall back to a free port when the preferred one is taken. A port the
user asked for explicitly is never silently replaced: that is an error that names who holds it.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterable

LOOPBACK = "127.0.0.1"


class PortInUseError(RuntimeError):
    """A port the stack must use is taken by another process."""


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when a listener could bind ``host:port`` now.

    SO_REUSEADDR is set as the JVM and most servers do, so a port left in TIME_WAIT by a process
    that just stopped counts as free (the next server will bind it), while a live listener does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str = LOOPBACK, avoid: Iterable[int] = ()) -> int:
    """A port the kernel reports free on ``host`` now, not in ``avoid`` (bounded: 50 tries)."""
    avoided = set(avoid)
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in avoided:
            return port
    raise PortInUseError(f"no free port on {host} after 50 tries (avoiding {sorted(avoided)})")


def describe_holder(port: int) -> str:
    """Best-effort ``pid N (name)`` of the process listening on ``port``, or '' when unknown."""
    try:
        import psutil
    except ImportError:
        return ""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    return "another process"
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(conn.pid)
                    return f"pid {conn.pid} ({' '.join(proc.cmdline()[:3])[:120]})"
                return f"pid {conn.pid}"
    return ""


def choose_port(
    preferred: int,
    *,
    strict: bool = False,
    taken: Iterable[int] = (),
    host: str = LOOPBACK,
    what: str = "service",
) -> int:
    """The port a service should listen on.

    ``preferred`` when it is free and not already ``taken`` by another service of this stack;
    otherwise a free port, unless ``strict`` (the user named this port): then ``PortInUseError``
    saying who holds it and how to pick another.
    """
    if preferred <= 0 or preferred > 65535:
        raise ValueError(f"port for {what} must be in 1..65535, got {preferred}")
    taken_set = set(taken)
    if preferred not in taken_set and port_is_free(preferred, host):
        return preferred
    if strict:
        holder = (
            "this stack" if preferred in taken_set else (describe_holder(preferred) or "unknown")
        )
        raise PortInUseError(
            f"port {preferred} for {what} is in use on {host} (by {holder}); stop that process or"
            f" choose another port (e.g. --port {what}=0 for any free port)"
        )
    return free_port(host, avoid=taken_set)
