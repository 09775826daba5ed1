"""runners.install: clear failure without the toolchain, stale-jar pruning, Prism version check."""

from __future__ import annotations

import os
import subprocess
import sys

from runners.install import (
    REPO_ROOT,
    TOXIPROXY_BINARY,
    TOXIPROXY_MODULE,
    go_module_version,
    prism_version,
    prune_stale_jars,
)


def test_without_java_maven_and_go_setup_says_what_to_install_and_exits_non_zero(tmp_path):
    # A real run of the installer with a PATH that holds none of the tools.
    env = {k: v for k, v in os.environ.items() if k not in ("PATH",)}
    env["PATH"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "runners.install"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "java not found: install a JDK 17" in proc.stderr
    assert "mvn not found: install Maven" in proc.stderr
    assert "go not found: install Go" in proc.stderr
    assert proc.stdout == ""  # nothing was attempted


def test_jars_absent_from_the_classpath_listing_are_pruned(tmp_path):
    lib = tmp_path / "lib"
    (lib / "svc").mkdir(parents=True)
    for name in ("a-1.jar", "b-2.jar", "old-binding-1.jar"):
        (lib / "svc" / name).write_bytes(b"")
    (lib / "svc.classpath").write_text("/m2/x/a-1.jar:/m2/y/b-2.jar")
    assert prune_stale_jars(lib) == ["svc/old-binding-1.jar"]
    assert sorted(p.name for p in (lib / "svc").iterdir()) == ["a-1.jar", "b-2.jar"]


def test_a_missing_or_foreign_binary_has_no_prism_version(tmp_path):
    assert prism_version(tmp_path / "prism") is None
    assert prism_version(REPO_ROOT / "Makefile") is None  # not a Go binary


def test_the_built_prism_is_at_the_beam_version():
    from runners.versions import versions

    binary = REPO_ROOT / ".local" / "bin" / "prism"
    assert binary.exists(), "run `make setup` to build Prism"
    assert prism_version(binary) == versions().beam


def test_the_built_toxiproxy_is_at_its_version():
    from runners.versions import versions

    assert TOXIPROXY_BINARY.exists(), "run `make setup` to build Toxiproxy"
    assert go_module_version(TOXIPROXY_BINARY, TOXIPROXY_MODULE) == versions().toxiproxy
