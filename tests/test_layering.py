"""The packages depend on each other one way: schemas <- transforms <- pipelines <- entry points.

``transforms`` (the reusable PTransforms) and ``schemas`` know nothing of pipelines, runners or
benchmarks; ``pipelines`` builds pipelines without the local stack; ``runners`` (processes, the
local stack, submission) does not build pipelines; ``tools`` and ``bench`` are entry points. Imports
are read from the source (module level and inside functions), so a late import counts too.
Today's known exceptions are listed by file: a new one fails here, and removing one means
deleting its line (``test_known_exceptions_still_exist`` says which lines are stale).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "transforms", "pipelines", "runners", "tools", "bench")

# package -> the project packages it may import
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "transforms": {"schemas"},
    "pipelines": {"schemas", "transforms"},
    "runners": {"schemas", "transforms"},
    # The tools (simulator, DLQ, demo, oracle) are entry points: they drive pipelines on the stack.
    "tools": {"schemas", "transforms", "pipelines", "runners"},
    "bench": {"schemas", "transforms", "pipelines", "runners", "tools"},
}

# (file, imported package): the exceptions that remain, each with why. All four are entry-point
# code living beside what it starts; none is imported by a pipeline's construction (``build``,
# ``attach``) nor by the options, so the workers need nothing of ``runners``
# (tests/test_worker_package.py).
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("pipelines/launch.py", "runners"): (
        "the entry point's side of a run: the runner presets and runner checks read the running"
        " local stack before the options are parsed (imported inside pipeline_options and main)"
    ),
    ("pipelines/run_control.py", "runners"): (
        "the command line's run control: an interrupted Flink run is cancelled through Flink's"
        " REST API (runners.flink, imported inside stop_job)"
    ),
    # The Dataflow launcher is an entry point kept with the rest of Dataflow's submission code.
    ("runners/dataflow/job.py", "pipelines"): "the launcher calls pipelines.property.start",
    ("runners/dataflow/template.py", "pipelines"): (
        "the flex template's parameters are checked against the pipeline's options classes"
    ),
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES)
    return found


def _violations() -> dict[tuple[str, str], None]:
    out: dict[tuple[str, str], None] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for imported in _imported_packages(path) - ALLOWED[package] - {package}:
                out[(rel, imported)] = None
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_only_go_down_the_layers(package: str) -> None:
    new = [
        f"{file} imports {imported}"
        for file, imported in _violations()
        if file.startswith(f"{package}/") and (file, imported) not in KNOWN_EXCEPTIONS
    ]
    assert new == [], f"imports against the layering (schemas <- transforms <- pipelines): {new}"


def test_known_exceptions_still_exist() -> None:
    stale = sorted(set(KNOWN_EXCEPTIONS) - set(_violations()))
    assert stale == [], f"no longer imported, delete from KNOWN_EXCEPTIONS: {stale}"


def test_the_reusable_transforms_import_nothing_above_them() -> None:
    offenders = [f for f, _ in _violations() if f.startswith(("transforms/", "schemas/"))]
    assert offenders == []
