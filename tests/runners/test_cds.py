"""``runners.local.cds`` with the real JVM: the archive a JVM writes at its exit is checked and
taken by the next start, a truncated one is never used, changed jars make a new archive, and a
writer that still runs keeps the others from writing too.

The JVM run is ``javac -version`` (a JDK module's main) with a one-file jar as the classpath:
small, yet a real application class path for the archive to be bound to."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from runners.local.cds import archive_flags, archive_works, classpath_fingerprint
from runners.local.plan import java_binary

GONE_PID = 99_999_999  # above any pid_max: a writer that no longer runs
JVM_TIMEOUT_S = 120


@pytest.fixture
def java() -> str:
    return java_binary()


@pytest.fixture
def classpath(tmp_path: Path) -> str:
    jars = tmp_path / "jars"
    jars.mkdir()
    with zipfile.ZipFile(jars / "app.jar", "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    return f"{jars}/*"


def run_jvm(java: str, flags: list[str], classpath: str) -> subprocess.CompletedProcess:
    argv = [java, *flags, "-cp", classpath, "-m", "jdk.compiler/com.sun.tools.javac.Main"]
    return subprocess.run(
        [*argv, "-version"], capture_output=True, text=True, timeout=JVM_TIMEOUT_S
    )


def test_the_archive_a_jvm_writes_at_exit_is_checked_then_used(java, classpath, tmp_path):
    cds = tmp_path / "cds"
    first = archive_flags(java, classpath, cds, "harness", GONE_PID)
    assert len(first) == 1 and first[0].startswith("-XX:ArchiveClassesAtExit="), first
    assert run_jvm(java, first, classpath).returncode == 0
    written = Path(first[0].split("=", 1)[1])
    assert written.stat().st_size > 0

    second = archive_flags(java, classpath, cds, "harness", os.getpid())
    archive = cds / f"harness-{classpath_fingerprint(java, classpath)}.jsa"
    assert second == [f"-XX:SharedArchiveFile={archive}"]
    assert not written.exists() and not list(cds.glob("*.writing"))
    shared = run_jvm(java, [*second, "-Xshare:on"], classpath)
    assert shared.returncode == 0, shared.stderr


def test_a_truncated_archive_is_dropped_and_written_again(java, classpath, tmp_path):
    cds = tmp_path / "cds"
    first = archive_flags(java, classpath, cds, "harness", GONE_PID)
    assert run_jvm(java, first, classpath).returncode == 0
    written = Path(first[0].split("=", 1)[1])
    data = written.read_bytes()
    written.chmod(0o644)
    written.write_bytes(data[: len(data) // 3])  # as if the writer was killed mid-write
    assert not archive_works(java, classpath, written)

    again = archive_flags(java, classpath, cds, "harness", 4242)
    assert again == [
        f"-XX:ArchiveClassesAtExit={written.parent / written.name.replace(str(GONE_PID), '4242')}"
    ]
    assert not written.exists() and not list(cds.glob("*.jsa"))


def test_while_a_writer_runs_the_others_start_plain(java, classpath, tmp_path):
    cds = tmp_path / "cds"
    assert archive_flags(java, classpath, cds, "harness", os.getpid())  # this process writes
    assert archive_flags(java, classpath, cds, "harness", GONE_PID) == []


def test_changed_jars_make_a_new_archive_and_the_old_one_goes(java, classpath, tmp_path):
    cds = tmp_path / "cds"
    first = archive_flags(java, classpath, cds, "harness", GONE_PID)
    assert run_jvm(java, first, classpath).returncode == 0
    assert archive_flags(java, classpath, cds, "harness", 1)[0].startswith("-XX:Shared")
    before = classpath_fingerprint(java, classpath)
    jar = Path(classpath[:-1]) / "app.jar"
    os.utime(jar, ns=(jar.stat().st_atime_ns, jar.stat().st_mtime_ns + 10**9))
    assert classpath_fingerprint(java, classpath) != before
    flags = archive_flags(java, classpath, cds, "harness", GONE_PID)
    assert flags[0].startswith("-XX:ArchiveClassesAtExit="), flags
    assert not list(cds.glob(f"harness-{before}*"))
