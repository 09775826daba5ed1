"""A real Flink session cluster from the PyPI distribution, supervised like every service."""

from __future__ import annotations

import os
import urllib.request

import psutil
import pytest

from runners import _procs, flink_cluster, local
from runners.flink import FlinkRest, FlinkRestError

pytestmark = [pytest.mark.integration, pytest.mark.flink, pytest.mark.timeout(400)]


def test_config_binds_loopback_and_turns_the_prometheus_reporter_on(tmp_path):
    ports = flink_cluster.ClusterPorts(
        rest=1, rpc=2, prometheus_jobmanager=3, prometheus_taskmanagers=(4,)
    )
    conf = dict(
        line.split(": ", 1) for line in flink_cluster.config_yaml(ports, tmp_path).splitlines()
    )
    assert conf["rest.port"] == "1"
    assert conf["jobmanager.rpc.port"] == "2"
    assert conf["rest.bind-address"] == "localhost"
    assert conf["taskmanager.bind-host"] == "localhost"
    assert conf["metrics.reporter.prom.factory.class"].endswith("PrometheusReporterFactory")


def test_flink_rest_rejects_a_url_without_scheme():
    with pytest.raises(ValueError, match="http://"):
        FlinkRest("localhost:8081")


def test_up_flink_cluster_registers_a_taskmanager_exposes_metrics_and_down_stops_both(tmp_path):
    # Needs the distribution from `make setup`.
    assert (flink_cluster.distribution_dir() / "lib").is_dir(), "run `make setup`"
    stack = local.ensure_up(["flink-cluster"], home=tmp_path, port_overrides={"flink-cluster": 0})
    try:
        rec = stack.record("flink-cluster")
        assert [p.role for p in rec.processes] == ["jobmanager", "taskmanager"]
        assert flink_cluster.taskmanagers_registered(stack.flink_rest_url, 1)
        rest = FlinkRest(stack.flink_rest_url)
        assert rest.jobs() == []
        with pytest.raises(FlinkRestError, match="HTTP 404"):
            rest.state("00000000000000000000000000000000")
        for role in ("prom-jm", "prom-tm"):
            url = f"http://127.0.0.1:{rec.ports[role]}/metrics"
            with urllib.request.urlopen(url, timeout=10) as resp:
                assert b"flink_" in resp.read()
        pids = [p.pid for p in rec.processes]
    finally:
        local.down(home=tmp_path, say=lambda _m: None)
    for pid in pids:
        assert not _procs.is_alive(pid)
        assert not [p for p in psutil.process_iter() if _pgid(p) == pid]


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except (ProcessLookupError, psutil.Error):
        return None


def test_a_streaming_beam_job_on_the_session_cluster_takes_a_savepoint_and_is_cancelled(tmp_path):
    import time

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.transforms.periodicsequence import PeriodicImpulse

    stack = local.ensure_up(
        ["flink-cluster", "flink-job-server"],
        home=tmp_path,
        port_overrides={"flink-cluster": 0, "flink-job-server": 0},
    )
    try:
        # The job server submits to the session cluster, not to an embedded Flink.
        assert (
            stack.record("flink-job-server")
            .extra["flink_master"]
            .endswith(str(stack.record("flink-cluster").ports["rest"]))
        )
        options = PipelineOptions(
            [
                "--runner=FlinkRunner",
                f"--job_endpoint={stack.job_endpoint}",
                "--environment_type=LOOPBACK",
                "--streaming",
                "--checkpointing_interval=5000",
            ]
        )
        pipeline = beam.Pipeline(options=options)
        _ = pipeline | "Tick" >> PeriodicImpulse(fire_interval=1) | "Double" >> beam.Map(_double)
        pipeline.run()
        rest = FlinkRest(stack.flink_rest_url)
        running = []
        deadline = time.monotonic() + 180
        while not running and time.monotonic() < deadline:
            running = [j for j in rest.jobs() if j.state == "RUNNING"]
            time.sleep(2)
        assert len(running) == 1, f"no RUNNING job after 180 s: {rest.jobs()}"
        jid = running[0].jid
        location = rest.savepoint(jid, wait_s=120)
        assert location.startswith("file:") and (tmp_path / "flink-cluster" / "savepoints").is_dir()
        assert any((tmp_path / "flink-cluster" / "savepoints").iterdir())
        assert rest.cancel(jid, wait_s=60) == "CANCELED"
    finally:
        local.down(home=tmp_path, say=lambda _m: None)


def _double(x: int) -> int:
    return x * 2
