"""Install what the local stack needs, idempotently: ``python -m runners.install`` (``make setup``).

1. Checks that ``java`` (17+), ``mvn`` and ``go`` exist; otherwise one message listing what to
   install, exit 2.
2. ``mvn -B -f runners/java/pom.xml package``: copies the runtime classpaths of the expansion
   service (+ Java SDK harness), the Flink job server, Kafka IO at the Flink runner's version (the
   native Kafka read, ``flink-legacy-read``) and the Kafka broker into ``.local/lib/``;
   ``~/.m2`` caches downloads, so a second run downloads nothing. Jars no longer in a classpath
   (left by an older pom) are removed. Then the benchmarks' Kafka Streams peer
   (``bench/kstreams/pom.xml``, into ``.local/kstreams-build/``), so its dependencies are cached.
3. Prism at ``beam.version`` into ``.local/bin/prism`` with ``go install`` (skipped when the binary
   there was built from that version: ``go version -m`` tells); likewise Toxiproxy's server at
   ``toxiproxy.version`` into ``.local/bin/toxiproxy-server`` (the fault suite's network faults).
4. ``redis-server`` and ``prometheus`` from Debian (``apt-get update`` then ``install``) when
   missing (the enrichment cache; the metrics server of ``runners.local up prometheus``).
5. The Flink distribution for a session cluster (PyPI's ``apache-flink-libraries`` sdist at
   ``flink.version``, ~230 MB) into ``.local/flink-<version>/``: ``make test`` and ``make bench``
   start that cluster, so ``make setup`` installs it like every other part of the stack.

Standard library only, so it runs before the virtualenv exists. Every step has a timeout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from runners.versions import POM_PATH, versions

REPO_ROOT = Path(__file__).resolve().parents[1]
LIB_DIR = REPO_ROOT / ".local" / "lib"
BIN_DIR = REPO_ROOT / ".local" / "bin"
KSTREAMS_POM = REPO_ROOT / "bench" / "kstreams" / "pom.xml"
PRISM_MODULE = "github.com/apache/beam/sdks/v2"
PRISM_PACKAGE = f"{PRISM_MODULE}/go/cmd/prism"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_PACKAGE = f"{TOXIPROXY_MODULE}/cmd/server"
TOXIPROXY_BINARY = BIN_DIR / "toxiproxy-server"

MVN_TIMEOUT_S = 45 * 60
GO_TIMEOUT_S = 30 * 60
APT_TIMEOUT_S = 15 * 60

_HOW_TO_INSTALL = {
    "java": "a JDK 17: apt-get install -y openjdk-17-jdk-headless",
    "mvn": "Maven 3.8+: apt-get install -y maven",
    "go": "Go 1.22+: https://go.dev/doc/install (then put go on PATH)",
}


class InstallError(RuntimeError):
    """A setup step failed; the message says what to do."""


@dataclass(frozen=True)
class StepResult:
    name: str
    seconds: float
    detail: str


def missing_tools() -> list[str]:
    """Lines naming each missing tool and how to install it (empty when all are there)."""
    problems = [
        f"{tool} not found: install {how}"
        for tool, how in _HOW_TO_INSTALL.items()
        if shutil.which(tool) is None
    ]
    if shutil.which("java") is not None:
        major = java_major_version()
        if major is not None and major < 17:
            problems.append(f"java is version {major}: install {_HOW_TO_INSTALL['java']}")
    return problems


def java_major_version() -> int | None:
    """The major version ``java -version`` reports (None when it cannot be read)."""
    try:
        out = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=60, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8" style


def _run(cmd: list[str], *, timeout_s: float, what: str, env: dict[str, str] | None = None) -> None:
    """Run ``cmd`` with its output shown, failing with ``InstallError`` on error or timeout."""
    print(f"$ {' '.join(cmd)}", flush=True)
    try:
        proc = subprocess.run(cmd, env=env, timeout=timeout_s, check=False, cwd=REPO_ROOT)
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"{what} did not finish in {timeout_s / 60:.0f} min") from exc
    if proc.returncode != 0:
        raise InstallError(f"{what} failed (exit {proc.returncode}); see the output above")


def maven_package(quiet: bool = False) -> StepResult:
    """Resolve the Java side into ``.local/lib/<service>/`` and prune stale jars."""
    start = time.monotonic()
    cmd = ["mvn", "-B", "-f", str(POM_PATH), "package"]
    if quiet:
        cmd.insert(2, "-q")
    _run(cmd, timeout_s=MVN_TIMEOUT_S, what="mvn package (the Java side of the stack)")
    # The benchmarks' Kafka Streams peer: built here so that ~/.m2 holds its dependencies and
    # bench.kstreams_peer builds it offline later (it rebuilds when its sources change).
    peer = ["mvn", "-B", "-f", str(KSTREAMS_POM), "package"]
    if quiet:
        peer.insert(2, "-q")
    _run(
        peer, timeout_s=MVN_TIMEOUT_S, what="mvn package of the Kafka Streams peer (bench/kstreams)"
    )
    pruned = prune_stale_jars(LIB_DIR)
    counts = {d.name: len(list(d.glob("*.jar"))) for d in sorted(LIB_DIR.iterdir()) if d.is_dir()}
    detail = ", ".join(f"{k} {v} jars" for k, v in counts.items())
    if pruned:
        detail += f"; removed stale {', '.join(pruned)}"
    return StepResult("maven", time.monotonic() - start, detail)


def prune_stale_jars(lib_dir: Path) -> list[str]:
    """Delete jars in ``lib_dir/<service>/`` absent from ``lib_dir/<service>.classpath``."""
    removed = []
    for listing in sorted(lib_dir.glob("*.classpath")):
        folder = lib_dir / listing.stem
        wanted = {Path(p).name for p in listing.read_text().strip().split(os.pathsep) if p}
        if not folder.is_dir() or not wanted:
            continue
        for jar in folder.glob("*.jar"):
            if jar.name not in wanted:
                jar.unlink()
                removed.append(f"{listing.stem}/{jar.name}")
    return removed


def go_module_version(binary: Path, module: str) -> str | None:
    """The version of Go module ``module`` a binary was built from (``go version -m``), or None
    (no such file, not a Go binary, or built from another module)."""
    if not binary.exists():
        return None
    try:
        out = subprocess.run(
            ["go", "version", "-m", str(binary)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "mod" and parts[1] == module:
            return parts[2].removeprefix("v")
    return None


def prism_version(binary: Path) -> str | None:
    """The Beam module version a Prism binary was built from (``go version -m``), or None."""
    return go_module_version(binary, PRISM_MODULE)


def _go_install(name: str, module: str, package: str, version: str, binary: Path) -> StepResult:
    """``go install package@vversion`` as ``binary`` (in ``.local/bin``) unless ``binary`` was
    already built from ``module`` at ``version``. ``go install`` names the binary after the
    package's folder (Toxiproxy's is ``server``): it builds into a private GOBIN, then moves."""
    start = time.monotonic()
    have = go_module_version(binary, module)
    if have == version:
        return StepResult(name, time.monotonic() - start, f"v{version} already built ({binary})")
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BIN_DIR) as gobin:
        _run(
            ["go", "install", f"{package}@v{version}"],
            timeout_s=GO_TIMEOUT_S,
            what=f"go install {package}@v{version}",
            env=dict(os.environ, GOBIN=gobin),
        )
        os.replace(Path(gobin) / package.rsplit("/", 1)[-1], binary)
    if go_module_version(binary, module) != version:
        raise InstallError(f"{binary} was not built from {module} v{version}; see the go output")
    action = "built" if have is None else f"rebuilt (was v{have})"
    return StepResult(name, time.monotonic() - start, f"v{version} {action} ({binary})")


def build_prism() -> StepResult:
    """Prism at the Beam version into ``.local/bin/prism``."""
    return _go_install("prism", PRISM_MODULE, PRISM_PACKAGE, versions().beam, BIN_DIR / "prism")


def build_toxiproxy() -> StepResult:
    """Toxiproxy's server into ``.local/bin/toxiproxy-server`` (the fault suite's network
    faults between the pipeline and Kafka, ``runners/toxiproxy.py``)."""
    return _go_install(
        "toxiproxy", TOXIPROXY_MODULE, TOXIPROXY_PACKAGE, versions().toxiproxy, TOXIPROXY_BINARY
    )


def _install_apt(step: str, binary: str, package: str, why: str) -> StepResult:
    """``apt-get install <package>`` when ``binary`` is not on PATH (Debian, as root)."""
    start = time.monotonic()
    found = shutil.which(binary)
    if found:
        return StepResult(step, time.monotonic() - start, f"present ({found})")
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise InstallError(
            f"{binary} is missing ({why}): install it (Debian: sudo apt-get install -y {package})"
        )
    # RUNLEVEL=1 keeps Debian's maintainer scripts from starting a system service on its default
    # port: the stack runs its own, on loopback.
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
    _run(["apt-get", "update"], timeout_s=APT_TIMEOUT_S, what="apt-get update", env=env)
    _run(
        ["apt-get", "install", "-y", "--no-install-recommends", package],
        timeout_s=APT_TIMEOUT_S,
        what=f"apt-get install {package}",
        env=env,
    )
    return StepResult(step, time.monotonic() - start, "installed with apt-get")


def install_redis() -> StepResult:
    """``apt-get install redis-server`` when missing (the enrichment cache of the stack)."""
    return _install_apt("redis", "redis-server", "redis-server", "the enrichment cache")


def install_prometheus() -> StepResult:
    """``apt-get install prometheus`` when missing (the stack's metrics server, opt-in service
    ``prometheus``; Debian 12 serves 2.42)."""
    return _install_apt("prometheus", "prometheus", "prometheus", "the metrics server")


def install_flink_distribution() -> StepResult:
    """The Flink session cluster's distribution (idempotent: kept once unpacked)."""
    from runners import flink_cluster

    start = time.monotonic()
    try:
        dest = flink_cluster.install_distribution()
    except flink_cluster.FlinkClusterError as exc:
        raise InstallError(str(exc)) from exc
    return StepResult("flink", time.monotonic() - start, f"distribution at {dest}")


STEPS = ("maven", "prism", "toxiproxy", "redis", "prometheus", "flink")


def selected_steps(args: argparse.Namespace) -> list[str]:
    """The steps a run performs, in order: every one of ``STEPS`` not skipped by ``--skip-X``."""
    return [name for name in STEPS if not getattr(args, f"skip_{name}")]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m runners.install`` (every step runs unless skipped)."""
    parser = argparse.ArgumentParser(
        prog="python -m runners.install",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--skip-maven", action="store_true", help="skip the Java classpaths")
    parser.add_argument("--skip-prism", action="store_true", help="skip building Prism")
    parser.add_argument(
        "--skip-toxiproxy", action="store_true", help="skip Toxiproxy (network fault tests)"
    )
    parser.add_argument("--skip-redis", action="store_true", help="skip redis-server")
    parser.add_argument(
        "--skip-prometheus", action="store_true", help="skip prometheus (the metrics server)"
    )
    parser.add_argument(
        "--skip-flink",
        action="store_true",
        help="skip the Flink session cluster's distribution (~230 MB; tests of the cluster fail)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="mvn -q")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    problems = missing_tools()
    if problems:
        print("cannot set up the local stack:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    runners_of = {
        "maven": lambda: maven_package(args.quiet),
        "prism": build_prism,
        "toxiproxy": build_toxiproxy,
        "redis": install_redis,
        "prometheus": install_prometheus,
        "flink": install_flink_distribution,
    }
    steps = [runners_of[name] for name in selected_steps(args)]
    results = []
    try:
        for step in steps:
            results.append(step())
    except InstallError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r.name:<7} {r.seconds:7.1f}s  {r.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
