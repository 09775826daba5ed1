"""``python -m pipelines.property`` as a user runs it (a subprocess), on the real stack.

- A successful backfill exits 0 and prints no ERROR line and no traceback (Beam's shutdown noise
  stays in the run's log file).
- A Java exception from Kafka IO (a missing input topic) ends the run with one line naming the
  cause and the fix; the whole trace is in the log file the line names.
- SIGTERM or SIGINT (Ctrl-C) of a streaming run (records flowing) stops what the run started: it
  prints no traceback, exits 130 saying the job was cancelled; every process it started (Prism's,
  on Prism) is gone; on Flink the job no longer runs in Flink (cancelled through Flink's REST
  API: Beam's own cancel leaves it running).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from pipelines.options import PropertyTopics
from runners.install import REPO_ROOT
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate import SimulationSpec, generate, produce
from transforms.io.kafka import EXPANSION_SERVICE_KEY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

START_TIMEOUT_S = 240
EXIT_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def local_services(session_stack):
    """The market-data service and Redis of the local stack (started when not running)."""
    from runners import local

    return session_stack.ensure([local.MARKETDATA, local.REDIS])


def _argv(
    runner: str, kafka_bootstrap, expansion_service, local_services, make_topic, **given: str
) -> list:
    """The run's flags, every topic fresh (one partition) unless ``given`` (field -> name)."""
    topics = {f: given.get(f) or make_topic(1, suffix=f) for f in vars(PropertyTopics())}
    return [
        f"--runner={runner}",
        f"--bootstrap_servers={kafka_bootstrap}",
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: expansion_service}),
        f"--marketdata_url={local_services.marketdata_url}",
        f"--redis_url={local_services.redis_url}",
        *(f"--{field}_topic={name}" for field, name in topics.items()),
    ]


def _wait_for_text(path: Path, text: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        ended = f"the run ended ({proc.returncode}):\n{path.read_text()[-3000:]}"
        assert proc.poll() is None, ended
        time.sleep(1)
    raise AssertionError(f"no {text!r} within {timeout_s} s:\n{path.read_text()[-3000:]}")


def _stop_with(
    proc: subprocess.Popen, stderr: Path, signum: int = signal.SIGTERM
) -> list[psutil.Process]:
    """The signal, then the exit; returns the processes the run had started (now to be gone)."""
    started = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signum)
    code = proc.wait(timeout=EXIT_TIMEOUT_S)
    assert code == 130, f"exit {code}:\n{stderr.read_text()[-3000:]}"
    assert "the job was cancelled" in stderr.read_text()
    return started


def _launch(argv: list[str], tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.property", *argv],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return proc, stderr


def _run_to_end(argv: list[str], tmp_path: Path) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.property", *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S + 300,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


RUNNERS = [
    pytest.param("PrismRunner", id="prism"),
    pytest.param("FlinkRunner", id="flink", marks=pytest.mark.flink),
]


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_successful_backfill_prints_no_error_and_no_traceback(
    runner, request, kafka_bootstrap, expansion_service, local_services, make_topic, tmp_path
):
    spec = SimulationSpec(properties=20, users=10, events=200, views=400, bots=1)
    events = make_topic(spec.partitions, suffix="events")
    views = make_topic(spec.partitions, suffix="views")
    sim = generate(spec)
    inputs = {EVENTS_TOPIC: events, VIEWS_TOPIC: views}
    produce(sim.records, kafka_bootstrap, topics=inputs, progress=False)
    argv = [
        *_argv(
            runner,
            kafka_bootstrap,
            expansion_service,
            local_services,
            make_topic,
            events=events,
            views=views,
        ),
        "--backfill",
    ]
    if runner == "FlinkRunner":
        argv.append(f"--job_endpoint={request.getfixturevalue('flink_job_server').job_endpoint}")

    code, out, err = _run_to_end(argv, tmp_path)

    assert code == 0, err[-3000:]
    assert "property pipeline finished: DONE" in out
    problems = [line for line in err.splitlines() if " ERROR " in line or "Traceback" in line]
    assert problems == []


def test_a_java_failure_of_kafka_io_is_one_line_with_cause_and_fix(
    kafka_bootstrap, expansion_service, local_services, make_topic, tmp_path
):
    missing = f"no-such-topic-{uuid.uuid4().hex[:8]}"
    argv = _argv(
        "PrismRunner",
        kafka_bootstrap,
        expansion_service,
        local_services,
        make_topic,
        events=missing,
    )

    code, _out, err = _run_to_end(argv, tmp_path)  # streaming: the read fails at once

    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err[-3000:]
    last = errors[0]
    assert last.startswith(
        f"error: the pipeline failed: IllegalStateException: Could not find any partitions info "
        f"for topic {missing}"
    )
    assert "a Kafka topic does not exist: create it (python -m runners.local topics)" in last
    assert "Traceback" not in err and "\tat org." not in err
    log = Path(REPO_ROOT / last.rsplit("(full trace: ", 1)[1].rstrip(")"))
    assert "at org.apache.beam" in log.read_text()  # the whole trace


def _kill_leftovers(proc: subprocess.Popen, children: list[psutil.Process]) -> None:
    """The test stops what it started, even when it failed half way."""
    for p in children:
        if p.is_running():
            p.kill()
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_or_ctrl_c_of_a_prism_run_cancels_its_job_and_stops_prism(
    signum, kafka_bootstrap, expansion_service, local_services, make_topic, tmp_path
):
    # Records flowing when the signal comes: the worker's state and data streams are open, and
    # the runner closing them at cancel must not print a worker thread's gRPC traceback.
    inputs = {"events": make_topic(1, suffix="events"), "views": make_topic(1, suffix="views")}
    spec = SimulationSpec(properties=20, users=10, events=200, views=800, bots=1, partitions=1)
    produce(
        generate(spec).records,
        kafka_bootstrap,
        topics={EVENTS_TOPIC: inputs["events"], VIEWS_TOPIC: inputs["views"]},
        progress=False,
    )
    argv = [
        *_argv(
            "PrismRunner", kafka_bootstrap, expansion_service, local_services, make_topic, **inputs
        ),
        "--offset_reset=earliest",
    ]
    proc, stderr = _launch(argv, tmp_path)
    children: list[psutil.Process] = []
    try:
        _wait_for_text(stderr, "State channel established", proc, START_TIMEOUT_S)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any(p.name() == "prism" for p in children), [p.name() for p in children]

        started = _stop_with(proc, stderr, signum)
        _, alive = psutil.wait_procs(started, timeout=30)
        assert alive == [], f"left running: {[(p.pid, p.name()) for p in alive]}"
        assert "Traceback" not in stderr.read_text(), stderr.read_text()[-3000:]
    finally:
        _kill_leftovers(proc, children)


@pytest.mark.flink
def test_sigterm_of_a_flink_run_cancels_the_flink_job(
    kafka_bootstrap, expansion_service, local_services, make_topic, flink_job_server, tmp_path
):
    from runners.flink import FlinkRest, FlinkUnreachable, embedded_rest_url

    assert flink_job_server.log_path is not None, "needs the local stack's Flink job server"
    argv = [
        *_argv("FlinkRunner", kafka_bootstrap, expansion_service, local_services, make_topic),
        f"--job_endpoint={flink_job_server.job_endpoint}",
    ]
    log_offset = flink_job_server.log_path.stat().st_size
    since_ms = int(time.time() * 1000)
    proc, stderr = _launch(argv, tmp_path)
    children: list[psutil.Process] = []
    try:
        rest = FlinkRest(embedded_rest_url(flink_job_server.log_path, log_offset, START_TIMEOUT_S))
        jid = rest.wait_job_submitted(since_ms, START_TIMEOUT_S)
        children = psutil.Process(proc.pid).children(recursive=True)

        started = _stop_with(proc, stderr)
        try:
            state = rest.state(jid)
        except FlinkUnreachable:
            state = "GONE"  # the embedded Flink shuts down once its only job is terminal
        assert state in ("CANCELED", "GONE"), f"Flink job {jid} is {state}"
        _, alive = psutil.wait_procs(started, timeout=30)
        assert alive == [], f"left running: {[(p.pid, p.name()) for p in alive]}"
    finally:
        _kill_leftovers(proc, children)
