"""Application class-data sharing (AppCDS) for the stack's short-lived JVMs: the Java workers,
one JVM per job (``runners.local.java_harness``), start from an archive of the classes an
earlier worker loaded instead of loading and verifying them from the jars again.

The archive is built by the stack itself: while none exists, a worker starts with
``-XX:ArchiveClassesAtExit`` (JDK 13+), and the JVM writes every class it loaded when it exits
(the pool stops a worker with SIGTERM, which runs the JVM's normal exit; a SIGKILL writes
nothing). The next worker checks that file (a JVM given a truncated archive dies of SIGBUS, so an
unchecked one is never used), renames it into place and starts with ``-XX:SharedArchiveFile``.

- One archive per classpath and JDK: its name carries a hash of the java binary and of every
  jar's name, size and modification time, so changed jars make a new archive (older ones are
  deleted) and the JVM's own check (it refuses an archive whose jars changed) is never relied on.
- One writer at a time: a worker that writes leaves a ``.writing`` marker naming its pid; while
  that process lives, other workers start without an archive and without writing one.
- Absent archive, failed check, unwritable directory: a plain start, never a failed worker.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import subprocess
from pathlib import Path

#: How long checking a finished archive may take (a JVM printing its version: ~0.3 s).
CHECK_TIMEOUT_S = 60.0


def classpath_fingerprint(java: str, classpath: str) -> str:
    """A hash of the JVM binary and of the classpath's jars (name, size, modification time),
    the ``dir/*`` wildcard expanded as the java launcher does (every ``.jar`` in ``dir``)."""
    digest = hashlib.sha256()
    binary = Path(java).resolve()
    with contextlib.suppress(OSError):
        digest.update(f"{binary}:{binary.stat().st_size}:{binary.stat().st_mtime_ns}\n".encode())
    for entry in classpath.split(os.pathsep):
        paths = (
            sorted(glob.glob(os.path.join(entry[:-1], "*.[jJ][aA][rR]")))
            if entry.endswith("*")
            else [entry]
        )
        for path in paths:
            try:
                stat = os.stat(path)
            except OSError:
                digest.update(f"{path}:missing\n".encode())
                continue
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def archive_works(java: str, classpath: str, archive: Path) -> bool:
    """Whether a JVM starts with ``archive`` (``-Xshare:on`` fails instead of ignoring it)."""
    try:
        done = subprocess.run(
            [
                java,
                f"-XX:SharedArchiveFile={archive}",
                "-Xshare:on",
                # A broken archive crashes the JVM: no crash report, no core dump left behind.
                "-XX:ErrorFile=/dev/null",
                "-XX:-CreateCoredumpOnCrash",
                "-cp",
                classpath,
                "-version",
            ],
            capture_output=True,
            timeout=CHECK_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def archive_flags(java: str, classpath: str, directory: Path, name: str, pid: int) -> list[str]:
    """The JVM flags for process ``pid`` (about to become that JVM) of the archive family
    ``name`` in ``directory``: use the archive, or write it at exit, or nothing (see the module
    docstring)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        key = f"{name}-{classpath_fingerprint(java, classpath)}"
        archive = directory / f"{key}.jsa"
        for stale in directory.glob(f"{name}-*"):
            if not stale.name.startswith(key):
                stale.unlink(missing_ok=True)
        if archive.exists():
            return [f"-XX:SharedArchiveFile={archive}"]
        for marker in directory.glob(f"{key}.*.writing"):
            writer = int(marker.name.split(".")[-2])
            if _alive(writer):
                return []  # another worker writes it: start plain
            written = directory / f"{key}.{writer}.jsa"
            if written.exists() and archive_works(java, classpath, written):
                os.replace(written, archive)
            written.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
        if archive.exists():
            return [f"-XX:SharedArchiveFile={archive}"]
        (directory / f"{key}.{pid}.writing").touch()
        return [f"-XX:ArchiveClassesAtExit={directory / f'{key}.{pid}.jsa'}"]
    except (OSError, ValueError):
        return []
