"""``runners.local.cds`` with the real JVM: a worker lists its classes, the next start dumps the
archive in the background, later starts use it; a truncated archive is never used, a failed dump
is not retried, changed jars make a new archive, and a writer that still runs keeps the others
from writing too.

The JVM run is ``javac -version`` (a JDK module's main) with a one-file jar as the classpath:
small, yet a real application class path for the archive to be bound to."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from runners.local.cds import archive_flags, archive_works, classpath_fingerprint, main
from runners.local.plan import java_binary

GONE_PID = 99_999_999  # above any pid_max: a writer that no longer runs
JVM_TIMEOUT_S = 120
DUMP_BOUND_S = 600


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


def wait_for_the_dumper(cds: Path) -> None:
    """Until the background dump ended (its marker gone); killed if it outlives the bound."""
    deadline = time.monotonic() + DUMP_BOUND_S
    while markers := list(cds.glob("*.dumping")):
        if time.monotonic() > deadline:
            for marker in markers:
                os.kill(int(marker.name.split(".")[-2]), signal.SIGKILL)
            pytest.fail(f"the dump did not end within {DUMP_BOUND_S} s")
        time.sleep(0.2)


def test_a_worker_lists_its_classes_the_next_dumps_them_later_ones_share(java, classpath, tmp_path):
    cds = tmp_path / "cds"
    first = archive_flags(java, classpath, cds, "harness", GONE_PID)
    assert len(first) == 1 and first[0].startswith("-XX:DumpLoadedClassList="), first
    assert run_jvm(java, first, classpath).returncode == 0

    assert archive_flags(java, classpath, cds, "harness", 1) == []  # starts the dump, plain
    wait_for_the_dumper(cds)
    third = archive_flags(java, classpath, cds, "harness", 2)
    archive = cds / f"harness-{classpath_fingerprint(java, classpath)}.jsa"
    assert third == [f"-XX:SharedArchiveFile={archive}"], sorted(p.name for p in cds.iterdir())
    shared = run_jvm(java, [*third, "-Xshare:on"], classpath)
    assert shared.returncode == 0, shared.stderr


def test_a_truncated_archive_fails_the_check(java, classpath, tmp_path):
    cds = tmp_path / "cds"
    run_jvm(java, archive_flags(java, classpath, cds, "harness", GONE_PID), classpath)
    archive_flags(java, classpath, cds, "harness", 1)
    wait_for_the_dumper(cds)
    (archive,) = cds.glob("*.jsa")
    assert archive_works(java, classpath, archive)
    data = archive.read_bytes()
    truncated = tmp_path / "truncated.jsa"
    truncated.write_bytes(data[: len(data) // 3])  # as if its writer was killed mid-write
    assert not archive_works(java, classpath, truncated)


def test_a_failed_dump_is_not_tried_again(java, classpath, tmp_path):
    cds = tmp_path / "cds"
    run_jvm(java, archive_flags(java, classpath, cds, "harness", GONE_PID), classpath)
    key = f"harness-{classpath_fingerprint(java, classpath)}"
    (written,) = cds.glob(f"{key}.*.classlist")
    classlist = written.with_name(f"{key}.classlist")
    written.rename(classlist)
    assert main([str(tmp_path / "no-java"), classpath, str(classlist)]) == 1
    assert (cds / f"{key}.failed").exists() and not list(cds.glob("*.jsa"))
    assert archive_flags(java, classpath, cds, "harness", 1) == []
    assert not list(cds.glob("*.dumping"))


def test_while_a_writer_runs_the_others_start_plain(java, classpath, tmp_path):
    cds = tmp_path / "cds"
    assert archive_flags(java, classpath, cds, "harness", os.getpid())  # this process lists
    assert archive_flags(java, classpath, cds, "harness", GONE_PID) == []


def test_changed_jars_make_a_new_archive_and_the_old_files_go(java, classpath, tmp_path):
    cds = tmp_path / "cds"
    run_jvm(java, archive_flags(java, classpath, cds, "harness", GONE_PID), classpath)
    archive_flags(java, classpath, cds, "harness", 1)
    wait_for_the_dumper(cds)
    assert archive_flags(java, classpath, cds, "harness", 2)[0].startswith("-XX:Shared")
    before = classpath_fingerprint(java, classpath)
    jar = Path(classpath[:-1]) / "app.jar"
    os.utime(jar, ns=(jar.stat().st_atime_ns, jar.stat().st_mtime_ns + 10**9))
    assert classpath_fingerprint(java, classpath) != before
    flags = archive_flags(java, classpath, cds, "harness", GONE_PID)
    assert flags[0].startswith("-XX:DumpLoadedClassList="), flags
    assert not list(cds.glob(f"harness-{before}*"))
