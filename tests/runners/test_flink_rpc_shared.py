"""The Flink job server's RPC system loaded once per JVM (runners/java/flink-rpc-shared): run on
the job server's own classpath, as the local stack starts it, against Flink's real RPC classes."""

from __future__ import annotations

import subprocess

import pytest

from runners.local.flink_services import RPC_SHARED_LIB, plan_flink_job_server
from runners.local.plan import java_binary
from runners.local.stack import StackPaths

CHECK = "io.propertystreams.flink.CheckSharedRpcSystem"


def test_the_job_servers_second_rpc_system_reuses_the_first_ones_classes(tmp_path):
    """A MiniCluster per job loads and closes an RPC system: with the project's loader first on
    the job server's classpath, the second load gets the first one's classes (Flink's own loader
    gives each load a new class loader: ``separate``) and still starts an RPC service after the
    first was closed."""
    lib = StackPaths.resolve().lib
    if not any((lib / RPC_SHARED_LIB).glob("*.jar")):
        pytest.fail(f"no jar in {lib / RPC_SHARED_LIB}: run `make setup` (runners.install)")
    paths = StackPaths(home=tmp_path, lib=lib, bin=tmp_path / "bin")
    argv = plan_flink_job_server(paths, {"job": 1, "artifact": 2}, "[local]").processes[0].argv
    classpath = argv[argv.index("-cp") + 1]
    done = subprocess.run(
        [java_binary(), "-cp", classpath, CHECK],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "shared", done.stdout[-2000:]
