"""Process handling for the local stack: spawn detached, check, wait, stop, tail logs.

Each service runs in its own session (process group), so stopping it reaches every process it
forked (Java launchers, shells). A pid is only trusted together with its start time: after a reboot
or pid reuse, a recorded pid that now belongs to another program is treated as dead.

A start time here is ``start_time(pid)``: seconds from boot to the process's start, the kernel's
own count, which no clock adjustment moves. psutil's ``create_time()`` is not usable for this: on
Linux it adds ``/proc/stat``'s ``btime``, whole seconds recomputed from the wall clock at every
read, so an NTP slew or step during a long run moves every process's create time by a second or
more, and each recorded service (the Kafka broker first) would look dead and replaced by a
stranger while it runs.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


class StartupError(RuntimeError):
    """A service did not become ready: it died or a wait timed out. The message carries its log."""


@dataclass(frozen=True)
class Spawned:
    """A started process: pid (also its process-group id) and its ``start_time``."""

    pid: int
    create_time: float


#: Recorded start times above this are wall-clock epochs (state files of earlier versions);
#: seconds since boot never reach it (30 years).
_EPOCH_FLOOR = 1e9


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start_time(pid: int) -> float:
    """Seconds from boot to the start of ``pid``; raises ``psutil.NoSuchProcess`` when it does
    not run. Linux: ``/proc/<pid>/stat``'s starttime (clock ticks since boot); elsewhere
    psutil's create time (absolute, from the kernel)."""
    if not sys.platform.startswith("linux"):
        return psutil.Process(pid).create_time()
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise psutil.NoSuchProcess(pid) from exc
    # Fields after "(comm)" start at field 3 (state); starttime is field 22.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19]) / _CLOCK_TICKS


def _same_start(pid: int, recorded: float) -> bool:
    """True when ``pid`` is the process started at ``recorded`` (a ``start_time``, or an
    epoch create time from an earlier state file)."""
    if recorded > _EPOCH_FLOOR:
        return abs(psutil.Process(pid).create_time() - recorded) <= 0.5
    return abs(start_time(pid) - recorded) <= 0.5


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Spawned:
    """Start ``argv`` detached in a new session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    return Spawned(pid=proc.pid, create_time=start_time(proc.pid))


def _process(pid: int, create_time: float | None) -> psutil.Process | None:
    """The live (non-zombie) process ``pid`` if it is the one started at ``create_time``."""
    try:
        proc = psutil.Process(pid)
        if create_time is not None and not _same_start(pid, create_time):
            return None  # the pid was reused by another program
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)
            return None
        return proc
    except psutil.Error:
        return None


def _reap(pid: int) -> None:
    """Collect the exit status of our own dead child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(pid: int, create_time: float | None = None) -> bool:
    """True when ``pid`` runs and is the process started at ``create_time``."""
    return _process(pid, create_time) is not None


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
    return members


def stop(pid: int, create_time: float | None, *, timeout_s: float = 20.0) -> str:
    """Stop the process group led by ``pid``; see ``stop_groups``."""
    return stop_groups([(pid, create_time)], timeout_s=timeout_s)[pid]


def stop_groups(
    groups: Sequence[tuple[int, float | None]], *, timeout_s: float = 20.0
) -> dict[int, str]:
    """Stop process groups together: SIGTERM to all, then SIGKILL what is left after ``timeout_s``.

    Each group is named by its leader's pid and start time. Only a group whose leader is the
    recorded process (or whose leader is gone but members remain) is signalled, never a reused
    pid. Stopping together matters for a Kafka cluster: brokers stopped one by one lose their
    controller quorum and hang in controlled shutdown. Returns pid → 'not running' | 'stopped' |
    'killed'.
    """
    outcome: dict[int, str] = {}
    members: dict[int, list[psutil.Process]] = {}
    for pid, create_time in groups:
        leader = _process(pid, create_time)
        if leader is None and create_time is not None and _pid_reused(pid, create_time):
            outcome[pid] = "not running"
            continue
        found = _group_members(pid) or ([leader] if leader else [])
        if not found:
            outcome[pid] = "not running"
            continue
        members[pid] = found
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    everyone = [p for procs in members.values() for p in procs]
    _, alive = psutil.wait_procs(everyone, timeout=timeout_s)
    alive_pids = {p.pid for p in alive}
    for pid, procs in members.items():
        left = [p for p in procs if p.pid in alive_pids]
        if not left:
            outcome[pid] = "stopped"
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        _, still = psutil.wait_procs(left, timeout=10)
        if still:
            raise RuntimeError(f"processes {[p.pid for p in still]} survived SIGKILL")
        outcome[pid] = "killed"
    for pid, _ in groups:
        _reap(pid)
    return outcome


def _pid_reused(pid: int, create_time: float) -> bool:
    """True when ``pid`` now belongs to a different (later) process than the one recorded."""
    try:
        return not _same_start(pid, create_time)
    except psutil.Error:
        return False


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, errors="replace") as fh:
            return "".join(collections.deque(fh, maxlen=lines))
    except FileNotFoundError:
        return ""


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout_s: float,
    alive: Callable[[], bool] | None = None,
    log_path: Path | None = None,
    interval_s: float = 0.5,
) -> float:
    """Poll ``ready()`` until it is true; returns the seconds waited.

    Fails with ``StartupError`` (and the last 30 log lines) when ``alive()`` turns false, i.e. the
    process died while starting, or when ``timeout_s`` passes.
    """
    start = time.monotonic()
    deadline = start + timeout_s
    while True:
        if ready():
            return time.monotonic() - start
        if alive is not None and not alive():
            raise StartupError(_with_log(f"{what}: the process exited while starting", log_path))
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout_s:.0f}s waiting for {what}"
            raise StartupError(_with_log(message, log_path))
        time.sleep(interval_s)


def _with_log(message: str, log_path: Path | None) -> str:
    if log_path is None:
        return message
    return f"{message}\n--- last lines of {log_path} ---\n{tail(log_path, 30).rstrip()}"
