"""Application class-data sharing (AppCDS) for the stack's short-lived JVMs: the Java workers,
one JVM per job (``runners.local.java_harness``), start from an archive of the classes an
earlier worker loaded instead of loading, parsing and verifying them from the jars again.

The stack builds the archive itself, in three steps spread over worker starts:

1. While there is no class list, a worker starts with ``-XX:DumpLoadedClassList``: the JVM
   writes the name of every class it loads (no cost at its exit, so the pool's 10 s between
   SIGTERM and SIGKILL is never at stake — a JDK 17 dynamic archive written at exit took longer
   than that on this loaded machine and was lost).
2. The next worker start finds that list (its writer has ended) and starts, in a session of its
   own, ``python -m runners.local.cds`` which runs ``java -Xshare:dump`` over it into a
   temporary file, checks the result (a JVM given a truncated archive dies of SIGBUS, so an
   unchecked archive is never used) and renames it into place; the worker itself starts plain.
3. Every later worker starts with ``-XX:SharedArchiveFile``.

- One archive per classpath and JDK: its name carries a hash of the java binary and of every
  jar's name, size and modification time, so changed jars make a new list and archive (files of
  other hashes are deleted) and the JVM's own jar check is never relied on.
- One writer at a time: a ``.listing`` or ``.dumping`` marker names the writing process; while
  it lives, other workers start plain. A dump that failed leaves ``.failed``: no second try for
  that classpath (workers start plain).
- Absent archive, failed check, unwritable directory: a plain start, never a failed worker.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import subprocess
import sys
from pathlib import Path

#: How long checking a finished archive may take (a JVM printing its version: ~0.3 s).
CHECK_TIMEOUT_S = 60.0
#: How long ``java -Xshare:dump`` may take (~3 CPU s for the workers' ~10 000 classes).
DUMP_TIMEOUT_S = 600.0
REPO_ROOT = Path(__file__).resolve().parents[2]


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


def _java_quiet(java: str) -> list[str]:
    # A broken archive crashes the JVM: no crash report, no core dump left behind.
    return [java, "-XX:ErrorFile=/dev/null", "-XX:-CreateCoredumpOnCrash"]


def archive_works(java: str, classpath: str, archive: Path) -> bool:
    """Whether a JVM starts with ``archive`` (``-Xshare:on`` fails instead of ignoring it)."""
    argv = [*_java_quiet(java), f"-XX:SharedArchiveFile={archive}", "-Xshare:on"]
    try:
        done = subprocess.run(
            [*argv, "-cp", classpath, "-version"], capture_output=True, timeout=CHECK_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def dump_archive(java: str, classpath: str, classlist: Path, archive: Path) -> bool:
    """Writes the static archive of ``classlist``'s classes to ``archive`` (through a temporary
    file, renamed only once a JVM starts with it); False when that failed."""
    temporary = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")
    argv = [
        *_java_quiet(java),
        "-Xshare:dump",
        f"-XX:SharedClassListFile={classlist}",
        f"-XX:SharedArchiveFile={temporary}",
        "-cp",
        classpath,
    ]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=DUMP_TIMEOUT_S)
        if done.returncode == 0 and archive_works(java, classpath, temporary):
            os.replace(temporary, archive)
            return True
        return False
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        temporary.unlink(missing_ok=True)


def _writer_running(directory: Path, key: str, step: str) -> int | None:
    """The pid of a live writer of ``step`` (``listing``/``dumping``), None when none runs."""
    for marker in directory.glob(f"{key}.*.{step}"):
        writer = int(marker.name.split(".")[-2])
        if _alive(writer):
            return writer
    return None


def archive_flags(java: str, classpath: str, directory: Path, name: str, pid: int) -> list[str]:
    """The JVM flags for process ``pid`` (about to become that JVM) of the archive family
    ``name`` in ``directory``: use the archive, or list the classes it loads, or nothing (and
    maybe start the dump); see the module docstring."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        key = f"{name}-{classpath_fingerprint(java, classpath)}"
        archive = directory / f"{key}.jsa"
        classlist = directory / f"{key}.classlist"
        for stale in directory.glob(f"{name}-*"):
            if not stale.name.startswith(f"{key}."):
                stale.unlink(missing_ok=True)
        if archive.exists():
            return [f"-XX:SharedArchiveFile={archive}"]
        if (directory / f"{key}.failed").exists():
            return []
        if _writer_running(directory, key, "listing") or _writer_running(directory, key, "dumping"):
            return []
        for marker in directory.glob(f"{key}.*.dumping"):  # a dumper ended without an archive
            marker.unlink(missing_ok=True)
            (directory / f"{key}.failed").touch()
            return []
        for marker in directory.glob(f"{key}.*.listing"):  # its worker has ended: take its list
            written = directory / f"{key}.{marker.name.split('.')[-2]}.classlist"
            if written.exists() and written.stat().st_size > 0:
                os.replace(written, classlist)
            written.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
        if classlist.exists():
            dumper = subprocess.Popen(
                [sys.executable, "-m", "runners.local.cds", java, classpath, str(classlist)],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # outlives this worker; never in its process group
            )
            (directory / f"{key}.{dumper.pid}.dumping").touch()
            return []
        (directory / f"{key}.{pid}.listing").touch()
        return [f"-XX:DumpLoadedClassList={directory / f'{key}.{pid}.classlist'}"]
    except (OSError, ValueError):
        return []


def main(argv: list[str]) -> int:
    """``python -m runners.local.cds JAVA CLASSPATH CLASSLIST``: the dump of step 2."""
    java, classpath, classlist = argv[0], argv[1], Path(argv[2])
    key = classlist.name.removesuffix(".classlist")
    marker = classlist.with_name(f"{key}.{os.getpid()}.dumping")
    try:
        if dump_archive(java, classpath, classlist, classlist.with_name(f"{key}.jsa")):
            return 0
        classlist.with_name(f"{key}.failed").touch()
        return 1
    finally:
        marker.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
