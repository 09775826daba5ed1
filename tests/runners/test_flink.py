"""runners.flink without a Flink: finding an embedded Flink's REST address, the CLI's refusals."""

from __future__ import annotations

import pytest

from runners import flink
from runners.flink import FlinkRestError, embedded_rest_url

# As Beam's Flink job server logs them (one embedded Flink per job).
_REST = (
    "INFO org.apache.flink.runtime.dispatcher.DispatcherRestEndpoint - Rest endpoint listening at"
)
JOB_SERVER_LOG = (
    "[main] INFO org.apache.beam.runners.flink.FlinkJobServerDriver - JobService started\n"
    f"[flink-runner-job-invoker-0] {_REST} localhost:40111\n"
    f"[flink-runner-job-invoker-1] {_REST} localhost:40222\n"
)


def test_embedded_rest_url_is_the_latest_one_the_job_server_logged(tmp_path):
    log = tmp_path / "flink-job-server.log"
    log.write_text(JOB_SERVER_LOG)
    assert embedded_rest_url(log) == "http://localhost:40222"


def test_embedded_rest_url_reads_only_what_was_logged_after_the_offset(tmp_path):
    log = tmp_path / "flink-job-server.log"
    log.write_text(JOB_SERVER_LOG)
    offset = log.stat().st_size
    with pytest.raises(FlinkRestError, match="no embedded Flink REST endpoint"):
        embedded_rest_url(log, offset, wait_s=0.2)
    with log.open("a") as out:
        out.write("... Rest endpoint listening at localhost:40333\n")
    assert embedded_rest_url(log, offset) == "http://localhost:40333"


def test_cli_fails_with_a_message_when_nothing_answers(capsys):
    # Port 9 (discard) on loopback: nothing listens there.
    assert flink.main(["--url", "http://127.0.0.1:9", "jobs"]) == 1
    assert "no answer" in capsys.readouterr().err


def test_cli_help_names_every_command(capsys):
    with pytest.raises(SystemExit):
        flink.main(["--help"])
    out = capsys.readouterr().out
    for command in ("jobs", "savepoint", "stop", "cancel", "watch", "--savepoint_path"):
        assert command in out


def test_job_changes_say_a_new_job_each_transition_and_each_restart_with_its_cause():
    from runners.flink import JobSnapshot, job_changes

    running = JobSnapshot("a" * 32, "property", "RUNNING", 0, "")
    assert job_changes(None, running) == [f"job {'a' * 8} property: RUNNING (restarts 0)"]
    assert job_changes(running, running) == []
    failed = JobSnapshot("a" * 32, "property", "RESTARTING", 1, "java.lang.Exception: boom")
    assert job_changes(running, failed) == [
        f"job {'a' * 8} property: RUNNING -> RESTARTING",
        f"job {'a' * 8} property: restarted (restarts 1): java.lang.Exception: boom",
    ]
