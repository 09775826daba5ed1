"""The seed's system as a benchmark peer: the property topology on Kafka Streams (Java).

    python -m bench.kstreams_peer build     # mvn package, when the sources changed

The topology is ``bench/kstreams/`` (a Maven project; its class comment says what it does and
where it differs from the Beam pipeline). This module builds it on demand and runs it:

- ``build()``: ``mvn -B -q -o package`` (offline first: ``python -m runners.install`` ran the same
  build, so ``~/.m2`` has every dependency; online when that fails) into one jar with its
  dependencies, ``.local/kstreams-build/kstreams-peer-all.jar``. Cached by a hash of the pom and
  the Java sources: an unchanged tree costs one hash and no Maven.
- ``arguments()``: the run's JSON arguments (bootstrap, topics, stop offsets, the topology's
  numbers as ``bench.raw_loop.TopologyRules``, the catalog's schemas and ids);
- ``KStreamsPeer``: ``java -jar`` as a subprocess; ``wait()`` returns its summary line (the Quix
  peer's: records consumed, first/last consumption times in epoch seconds, plus Kafka Streams'
  dropped-records total). It ends by itself once its input is consumed to the stop offsets, its
  repartition topics are consumed and committed to their ends, and its processors were quiet for
  ``quiet_s``; ``stop()`` ends it early (SIGTERM: the JVM's shutdown hook closes Kafka Streams).

Standard library only at import (``runners.install`` builds through it before the venv exists).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT = REPO_ROOT / "bench" / "kstreams"
BUILD_DIR = REPO_ROOT / ".local" / "kstreams-build"
JAR = BUILD_DIR / "kstreams-peer-all.jar"
STAMP = BUILD_DIR / "sources.sha256"
MVN_TIMEOUT_S = 30 * 60
# A polite neighbour on a shared machine; the topology's state is small (RocksDB holds it).
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx1g",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
    # One warning per record a window drops: counted in the summary instead.
    "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.streams.kstream.internals=error",
)


def source_hash(project: Path = PROJECT) -> str:
    """SHA-256 over the pom and every Java source (paths and contents, in path order)."""
    digest = hashlib.sha256()
    files = [project / "pom.xml", *sorted((project / "src").rglob("*.java"))]
    for path in files:
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def newest_source_mtime(project: Path = PROJECT) -> float:
    """The latest modification time of the pom and the Java sources."""
    files = [project / "pom.xml", *(project / "src").rglob("*.java")]
    return max(f.stat().st_mtime for f in files)


def build(say: Callable[[str], None] = print, *, timeout_s: float = MVN_TIMEOUT_S) -> Path:
    """The peer's jar, built when the sources changed since the last build (or it is missing).

    Raises ``RuntimeError`` with Maven's output when the build fails.
    """
    wanted = source_hash()
    if JAR.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return JAR
    if JAR.exists() and not STAMP.exists() and JAR.stat().st_mtime > newest_source_mtime():
        # Built by ``python -m runners.install`` (plain mvn, no stamp) after the last edit.
        STAMP.write_text(wanted + "\n")
        return JAR
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn not found: install Maven 3.8+ (apt-get install -y maven)")
    base = ["mvn", "-B", "-q", "-f", str(PROJECT / "pom.xml"), "package"]
    for offline in (True, False):
        say(f"kstreams: building the peer ({'offline' if offline else 'online'})")
        done = subprocess.run(
            [*base, "-o"] if offline else base,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode == 0 and JAR.exists():
            STAMP.write_text(wanted + "\n")
            return JAR
    raise RuntimeError(f"mvn package of {PROJECT} failed:\n{done.stdout[-4000:]}{done.stderr}")


def arguments(
    bootstrap: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    stop_offsets: Mapping[tuple[str, int], int],
    *,
    rules: Any = None,
    producer_extra: Mapping[str, Any] | None = None,
    timeout_s: float = 3600.0,
    quiet_s: float = 0.5,
    threads: int | None = None,
    grace_s: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The JSON arguments of one run. ``inputs``: ``events``/``views`` → topic; ``outputs``: the
    pipeline's output names (``pipelines.property.OUTPUT_SPECS``) → topic; ``stop_offsets``: the
    end (exclusive) of each input partition's part of the run; ``rules``: a
    ``bench.raw_loop.TopologyRules`` (default: the contract's numbers); ``grace_s``: the
    ``hourly`` / ``fraud`` windows' grace in seconds (default the seed's: 24 h minus the size)."""
    from schemas import CATALOG

    latest = {CATALOG.latest(e.name).schema_id for e in CATALOG}
    out: dict[str, Any] = {
        "bootstrap": bootstrap,
        "inputs": dict(inputs),
        "outputs": dict(outputs),
        "stop_offsets": [[t, p, end] for (t, p), end in stop_offsets.items()],
        "schemas": [
            {"id": e.schema_id, "schema": e.definition, "latest": e.schema_id in latest}
            for e in CATALOG
        ],
        "producer_extra": dict(producer_extra or {}),
        "timeout_s": timeout_s,
        "quiet_s": quiet_s,
    }
    if rules is not None:
        out["rules"] = dataclasses.asdict(rules)
    if grace_s is not None:
        out["grace_s"] = dict(grace_s)
    if threads is not None:
        out["threads"] = threads
    return out


class KStreamsPeer:
    """One run of the peer as a subprocess of this process (so a ``bench.compare.ProcessMeter``
    rooted here counts the JVM's CPU)."""

    def __init__(self, jar: Path, run_arguments: Mapping[str, Any]) -> None:
        handle, name = tempfile.mkstemp(prefix="kstreams-args-", suffix=".json")
        with os.fdopen(handle, "w") as f:
            json.dump(run_arguments, f)
        self._arguments_file = Path(name)
        self.proc = subprocess.Popen(
            ["java", *JVM_OPTIONS, "-jar", str(jar), name],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait(self, timeout_s: float) -> dict[str, Any]:
        """The summary line once the peer ended; ``RuntimeError`` (with its stderr) when it
        failed, ``subprocess.TimeoutExpired`` after ``timeout_s`` (the peer is then stopped)."""
        try:
            out, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        finally:
            self._arguments_file.unlink(missing_ok=True)
        if self.proc.returncode != 0:
            raise RuntimeError(f"kstreams exited {self.proc.returncode}: {err[-4000:]}")
        lines = out.strip().splitlines()
        if not lines:
            raise RuntimeError(f"kstreams printed no summary: {err[-4000:]}")
        return json.loads(lines[-1])

    def stop(self, grace_s: float = 60.0) -> None:
        """Ends the peer if it still runs: SIGTERM (Kafka Streams closes), then SIGKILL."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=30)


def run(run_arguments: Mapping[str, Any], timeout_s: float = 3600.0) -> dict[str, Any]:
    """Builds if needed, runs the peer to its end, returns its summary line."""
    peer = KStreamsPeer(build(), run_arguments)
    return peer.wait(timeout_s)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["build"]:
        print("usage: python -m bench.kstreams_peer build", file=sys.stderr)
        return 2
    print(build())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
