"""A real Flink session cluster (JobManager + N TaskManagers) without Docker or Flink's scripts.

The distribution comes from PyPI's ``apache-flink-libraries`` sdist (its ``deps/`` holds Flink's
``lib/``, ``plugins/``, ``opt/`` and ``bin/bash-java-utils.jar``, but no shell scripts and no
configuration), at ``flink.version`` of ``runners/java/pom.xml``, unpacked into
``.local/flink-<version>/``. This module writes the configuration, asks Flink's own
``BashJavaUtils`` for the JVM memory flags exactly as ``bin/jobmanager.sh``/``taskmanager.sh``
do, and builds the java command lines; ``runners.local`` runs and supervises them as the
``flink-cluster`` service (web UI and REST on 8081, a Prometheus reporter on each process).

Several TaskManagers (``runners.local up flink-cluster --taskmanagers 2``) are separate JVMs on
this machine, each with ``slots`` task slots; slots are spread evenly over them
(``cluster.evenly-spread-out-slots``), so a job at parallelism 2 runs one subtask of each stage
in each TaskManager rather than both in the first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from runners.versions import versions

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPI_PACKAGE = "apache-flink-libraries"

#: Flink's own Java 17 flags (``env.java.opts.all`` of the 1.19 default configuration).
JAVA17_OPTS: tuple[str, ...] = (
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
)

JOBMANAGER_MAIN = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER_MAIN = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
BASH_JAVA_UTILS = "org.apache.flink.runtime.util.bash.BashJavaUtils"
_RESULT_PREFIX = "BASH_JAVA_UTILS_EXEC_RESULT:"

LOG4J_PROPERTIES = """\
# Flink logs to stdout; the supervisor appends it to .local/logs/flink-cluster*.log.
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
logger.akka.name = org.apache.pekko
logger.akka.level = WARN
logger.netty.name = org.apache.flink.shaded.netty4
logger.netty.level = WARN
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
"""


class FlinkClusterError(RuntimeError):
    """The Flink distribution is missing or a Flink tool failed; the message says what to do."""


def distribution_dir(version: str | None = None) -> Path:
    return REPO_ROOT / ".local" / f"flink-{version or versions().flink}"


def install_distribution(version: str | None = None, timeout_s: float = 1800) -> Path:
    """Fetch ``apache-flink-libraries==<version>`` (sdist, ~230 MB) with pip and unpack its
    ``deps/`` into ``.local/flink-<version>/``; nothing is done when it is there already."""
    version = version or versions().flink
    dest = distribution_dir(version)
    if (dest / "lib" / f"flink-dist-{version}.jar").exists():
        return dest
    cache = REPO_ROOT / ".local" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"apache_flink_libraries-{version}.tar.gz"
    legacy = cache / f"apache-flink-libraries-{version}.tar.gz"
    if legacy.exists():
        sdist = legacy
    if not sdist.exists():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-build-isolation",
            f"{PYPI_PACKAGE}=={version}",
            "-d",
            str(cache),
        ]
        print(f"$ {' '.join(cmd)}", flush=True)
        try:
            subprocess.run(cmd, check=True, timeout=timeout_s)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise FlinkClusterError(
                f"pip download of {PYPI_PACKAGE}=={version} failed: {exc}"
            ) from exc
        found = sorted(cache.glob(f"apache[-_]flink[-_]libraries-{version}.tar.gz"))
        if not found:
            raise FlinkClusterError(f"pip left no {PYPI_PACKAGE} {version} sdist in {cache}")
        sdist = found[0]
    with tempfile.TemporaryDirectory(dir=cache) as tmp, tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/deps/" in m.name]
        tar.extractall(tmp, members=members, filter="data")
        deps = next(Path(tmp).glob("*/deps"))
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(deps), dest)
    return dest


@dataclass(frozen=True)
class ClusterPorts:
    rest: int
    rpc: int
    prometheus_jobmanager: int
    prometheus_taskmanagers: tuple[int, ...]
    """One Prometheus reporter port per TaskManager (the first TaskManager's first)."""


def taskmanager_role(index: int) -> str:
    """The supervisor's role name of TaskManager ``index`` (1-based): ``taskmanager`` for the
    first (as with one TaskManager), ``taskmanager-2`` and so on for the others."""
    return "taskmanager" if index == 1 else f"taskmanager-{index}"


def config_yaml(ports: ClusterPorts, workdir: Path, slots: int = 2) -> str:
    """Flink's ``config.yaml`` for a loopback session cluster (flattened keys are valid there)."""
    settings: dict[str, str | int] = {
        "jobmanager.rpc.address": "localhost",
        "jobmanager.rpc.port": ports.rpc,
        "jobmanager.bind-host": "localhost",
        "jobmanager.memory.process.size": "768m",
        "taskmanager.bind-host": "localhost",
        "taskmanager.host": "localhost",
        "taskmanager.numberOfTaskSlots": slots,
        "taskmanager.memory.process.size": "1280m",
        "parallelism.default": 1,
        # Subtasks go to the least used TaskManager: with 2 TaskManagers, parallelism 2 uses both.
        "cluster.evenly-spread-out-slots": "true",
        "rest.address": "localhost",
        "rest.bind-address": "localhost",
        "rest.port": ports.rest,
        "io.tmp.dirs": str(workdir / "tmp"),
        "web.tmpdir": str(workdir / "web"),
        "blob.storage.directory": str(workdir / "blob"),
        "state.savepoints.dir": f"file://{workdir / 'savepoints'}",
        "state.checkpoints.dir": f"file://{workdir / 'checkpoints'}",
        "metrics.reporter.prom.factory.class": (
            "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
        ),
        # Per job: a gauge per status (flink_jobmanager_job_runningState, restartingState,
        # failingState... 1 in that status, else 0) besides the time spent in it, so a job's
        # transitions and restarts are visible as metrics.
        "metrics.job.status.enable": "STATE;CURRENT_TIME;TOTAL_TIME",
    }
    return "".join(f"{key}: {value}\n" for key, value in settings.items())


def resource_params(
    java: str, dist: Path, conf_dir: Path, which: str
) -> tuple[list[str], list[str]]:
    """(JVM flags, ``-D`` dynamic properties) for ``which`` in ('JM', 'TM'), from Flink's
    ``BashJavaUtils`` as its scripts get them (the memory model is Flink's, not ours)."""
    cmd = [
        java,
        "-cp",
        f"{dist / 'bin' / 'bash-java-utils.jar'}:{dist / 'lib'}/*",
        BASH_JAVA_UTILS,
        f"GET_{which}_RESOURCE_PARAMS",
        "--configDir",
        str(conf_dir),
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise FlinkClusterError("Flink's BashJavaUtils did not answer in 120 s") from exc
    results = [
        ln[len(_RESULT_PREFIX) :] for ln in out.stdout.splitlines() if ln.startswith(_RESULT_PREFIX)
    ]
    if out.returncode != 0 or len(results) < 2:
        raise FlinkClusterError(
            f"Flink's BashJavaUtils {which} failed (exit {out.returncode}):\n{out.stdout[-2000:]}"
            f"{out.stderr[-2000:]}"
        )
    return results[-2].split(), results[-1].split()


@dataclass(frozen=True)
class ClusterProcess:
    role: str
    argv: list[str]
    env: Mapping[str, str]


def cluster_processes(
    java: str,
    dist: Path,
    workdir: Path,
    ports: ClusterPorts,
    log_for: Callable[[str], Path],
    slots: int = 2,
) -> list[ClusterProcess]:
    """Write the configuration under ``workdir/conf`` and return the JobManager's and each
    TaskManager's command line (JobManager first: the TaskManagers register with it); one
    TaskManager per port of ``ports.prometheus_taskmanagers``, each with ``slots`` slots."""
    if not ports.prometheus_taskmanagers:
        raise ValueError("a session cluster needs at least one TaskManager")
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    if not (dist / "lib").is_dir():
        raise FlinkClusterError(f"no Flink distribution at {dist}: run `make setup`")
    conf = workdir / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    for sub in ("tmp", "web", "blob", "savepoints", "checkpoints"):
        (workdir / sub).mkdir(exist_ok=True)
    (conf / "config.yaml").write_text(config_yaml(ports, workdir, slots))
    (conf / "log4j.properties").write_text(LOG4J_PROPERTIES)
    env = {
        "FLINK_CONF_DIR": str(conf),
        "FLINK_PLUGINS_DIR": str(dist / "plugins"),
        "FLINK_LIB_DIR": str(dist / "lib"),
    }
    classpath = f"{dist / 'lib'}/*"
    out = []
    roles = [("jobmanager", "JM", JOBMANAGER_MAIN, ports.prometheus_jobmanager)] + [
        (taskmanager_role(i), "TM", TASKMANAGER_MAIN, prom)
        for i, prom in enumerate(ports.prometheus_taskmanagers, start=1)
    ]
    params: dict[str, tuple[list[str], list[str]]] = {}
    for role, which, main, prom in roles:
        if which not in params:  # the same for every TaskManager: asked once
            params[which] = resource_params(java, dist, conf, which)
        jvm, dynamic = params[which]
        log = log_for(role)
        argv = [
            java,
            *jvm,
            *JAVA17_OPTS,
            f"-Dlog.file={log}",
            f"-Dlog4j.configurationFile=file:{conf / 'log4j.properties'}",
            "-cp",
            classpath,
            main,
            "--configDir",
            str(conf),
        ]
        if role == "jobmanager":
            argv += ["--executionMode", "cluster"]
        argv += [*dynamic, "-D", f"metrics.reporter.prom.port={prom}"]
        out.append(ClusterProcess(role, argv, env))
    return out


def rest_get(rest_url: str, path: str, timeout_s: float = 5.0) -> dict:
    with urllib.request.urlopen(f"{rest_url}{path}", timeout=timeout_s) as resp:
        return json.loads(resp.read())


def taskmanagers_registered(rest_url: str, expected: int = 1) -> bool:
    """True when the JobManager's REST API reports ``expected`` TaskManagers."""
    try:
        return int(rest_get(rest_url, "/overview", 3).get("taskmanagers", 0)) >= expected
    except (urllib.error.URLError, OSError, ValueError):
        return False
