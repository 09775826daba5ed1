"""The environments the benchmarks run in: a private local stack (its own home, any free
ports) with the services the measured systems need, and the separate venv Quix Streams runs in."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.workload import POOL_SYSTEMS, REPO_ROOT, RUNNERS

QUIX_VENV = REPO_ROOT / ".local" / "quix-venv"
QUIX_VERSION = "3.28.1"


def ensure_quix_venv(venv: Path = QUIX_VENV) -> Path:
    """The Python of a venv with quixstreams (see ``bench.quix_topology`` for why a separate one),
    created on first use; the project and its venv's packages are reachable after Quix's own."""
    import subprocess
    import sysconfig

    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('quixstreams'))"]
    found = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    if found.stdout.strip() != QUIX_VERSION:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"quixstreams=={QUIX_VERSION}"],
            check=True,
            timeout=900,
        )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
    )
    # A .pth appends to sys.path after the venv's own packages: Quix keeps its confluent-kafka.
    (site / "zz_property_streams.pth").write_text(
        f"{REPO_ROOT}\n{sysconfig.get_paths()['purelib']}\n"
    )
    return python


def start_stack(home: Path, systems: Sequence[str], beam_extras: Sequence[str] = ()):
    """The bench's private stack (``runners.local`` with its own home) and the pids to meter;
    ``beam_extras`` are further services the Beam pipelines use (``bench.latency``: market data
    and Redis)."""
    from runners import local

    # The runner presets find the stack through this variable (runners.local.StackPaths).
    os.environ[local.HOME_ENV] = str(home)
    services = [local.KAFKA]
    if any(s in RUNNERS for s in systems):
        services += [local.JAVA_WORKERS, local.EXPANSION_SERVICE, *beam_extras]
    if any(RUNNERS.get(s) == "FlinkRunner" for s in systems):
        # With the expansion service of --kafka_read=native (an idle JVM unless a run asks it).
        services += [local.FLINK_JOB_SERVER, local.FLINK_EXPANSION_SERVICE]
    if "flink_cluster" in systems:
        services.append(local.FLINK_CLUSTER)
    if any(s in POOL_SYSTEMS for s in systems):
        services.append(local.PYTHON_WORKERS)
    # Any free port, never the defaults: a shared stack (re)starting at the same moment would
    # take them too, and one of the two services then dies (seen: the expansion service).
    stack = local.ensure_up(
        services,
        home=home,
        port_overrides=dict.fromkeys(services, 0),
        create_topics=False,
        say=print,
    )
    pids = {name: stack.record(name).pid for name in services}
    if local.FLINK_CLUSTER in services:
        # Two JVMs, not parent and child: meter each.
        del pids[local.FLINK_CLUSTER]
        for proc in stack.record(local.FLINK_CLUSTER).processes:
            pids[f"{local.FLINK_CLUSTER}-{proc.role}"] = proc.pid
    return stack, pids
