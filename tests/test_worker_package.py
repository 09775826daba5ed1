"""The worker package (what Dataflow's ``--setup_file`` ships) holds only what workers run.

Workers import the pipeline modules (functions pickled by reference) and the transforms; the
entry points (``runners``, ``tools``, ``bench``) stay on the machine that launches. Two checks:
the packages setuptools puts in the package, and the modules a worker loads when it imports the
pipelines (in a fresh interpreter, so nothing this test session imported counts).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]
WORKER_PACKAGES = {"pipelines", "transforms", "schemas"}
ENTRY_POINTS = ("runners", "tools", "bench", "tests")


def test_the_setup_file_package_holds_pipelines_transforms_and_schemas_only() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(where=str(REPO), include=include)
    assert {p.split(".")[0] for p in packages} == WORKER_PACKAGES, packages


def test_importing_the_pipelines_loads_no_entry_point_module() -> None:
    probe = (
        "import sys\n"
        "import pipelines.passthrough, pipelines.property\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {ENTRY_POINTS!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
