"""CI runs what the README tells a user to run, and installs nothing that `make setup` does not.

A green CI means the README's commands work on a fresh clone only when CI has no install step of
its own: these tests read ``.ci/run``, the Makefile and the README and keep the three together.
"""

from __future__ import annotations

import re
import shlex

from runners.install import REPO_ROOT, STEPS, build_parser, selected_steps

CI_RUN = REPO_ROOT / ".ci" / "run"
MAKEFILE = REPO_ROOT / "Makefile"
README = REPO_ROOT / "README.md"


def _ci_commands() -> list[list[str]]:
    """Every ``make ...`` and ``$PY -m ...`` invocation in .ci/run, as argument lists (``timeout``
    and its duration dropped)."""
    commands = []
    for raw in CI_RUN.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        for match in re.finditer(r'(?:make|"\$PY"|\$PY|\.venv/bin/python)\s[^;|&]*', line):
            text = match.group(0).replace('"$PY"', "$PY").strip()
            text = re.sub(r"\s*(then|\|\|.*)$", "", text)
            commands.append(shlex.split(text))
    return commands


def _readme_commands(section_marker: str) -> list[str]:
    """Lines of the first bash block after ``section_marker`` in the README, comments dropped."""
    text = README.read_text()
    block = text[text.index(section_marker) :].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def _make_recipe(target: str) -> tuple[list[str], list[str]]:
    """(prerequisites, recipe lines) of a Makefile target."""
    lines = MAKEFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{target}:"):
            deps = line.split(":", 1)[1].split("##", 1)[0].split()
            recipe = []
            for nxt in lines[i + 1 :]:
                if not nxt.startswith("\t"):
                    break
                recipe.append(nxt.strip())
            return deps, recipe
    raise AssertionError(f"no target {target!r} in the Makefile")


def test_ci_installs_only_through_make_setup_and_runs_only_the_stack_cli_and_make_test():
    commands = _ci_commands()
    make_targets = [c[1] for c in commands if c[0] == "make"]
    assert make_targets == ["setup", "test"]
    python_calls = [c for c in commands if c[0] != "make"]
    assert python_calls, "CI should start and stop the stack with runners.local"
    for call in python_calls:
        assert call[1:3] == ["-m", "runners.local"], f"CI runs {call}: only runners.local may run"
        assert call[3] in {"up", "down", "status"}, f"CI runs {call}"
    code = "\n".join(line.split("#", 1)[0] for line in CI_RUN.read_text().splitlines())
    for installer in ("pip ", "pip3 ", "runners.install", "apt-get", "mvn ", "go install"):
        assert installer not in code, f".ci/run installs with {installer!r}: move it to make setup"


def test_the_readme_test_command_is_the_one_ci_runs():
    two_commands = _readme_commands("## The two commands")
    assert "make test" in two_commands
    assert "make run" in two_commands
    assert ["make", "test"] in _ci_commands()


def test_make_test_and_make_run_install_first_and_setup_runs_every_install_step():
    for target in ("test", "run"):
        deps, _ = _make_recipe(target)
        assert "setup" in deps, f"make {target} must depend on setup"
    _, recipe = _make_recipe("setup")
    assert recipe == ["$(PY) -m runners.install"], "make setup must run every install step"
    assert selected_steps(build_parser().parse_args([])) == list(STEPS)
    assert "flink" in STEPS  # the session cluster's distribution, which make test starts
