"""The command lines a user runs, run as a user runs them (a child process, its exit code, its
output): the stack CLI in its own home, the simulator against the real broker, and the demo
behind ``make run`` (exit 0 only when every output matched the oracle)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tools.simulate import Oracle

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
# Bounds of each command (a hung command fails the test instead of the session).
STACK_CMD_TIMEOUT_S = 180
SIMULATE_TIMEOUT_S = 120
DEMO_TIMEOUT_S = 420
SMALL = ["--properties=40", "--users=30", "--events=300", "--views=1200", "--bots=1"]


def run(*argv: str, timeout_s: float, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
    )


def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-clis"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def test_stack_cli_starts_shows_and_stops_services_in_its_own_home(tmp_path: Path) -> None:
    home = ["-m", "runners.local", "--home", str(tmp_path / "stack")]
    try:
        up = run(
            *home,
            "up",
            "redis",
            "marketdata",
            "--port=redis=0",
            "--port=marketdata=0",
            timeout_s=STACK_CMD_TIMEOUT_S,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        status = run(*home, "status", timeout_s=STACK_CMD_TIMEOUT_S)
        assert status.returncode == 0, status.stdout + status.stderr
        running = [line for line in status.stdout.splitlines() if "running" in line]
        assert any("redis" in line for line in running), status.stdout
        assert any("marketdata" in line for line in running), status.stdout
    finally:
        down = run(*home, "down", timeout_s=STACK_CMD_TIMEOUT_S)
    assert down.returncode == 0, down.stdout + down.stderr
    after = run(*home, "status", timeout_s=STACK_CMD_TIMEOUT_S)
    assert not [line for line in after.stdout.splitlines() if "running" in line], after.stdout
    # Nothing this home started is left running.
    leftover = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "stack")], capture_output=True, text=True
    ).stdout.split()
    assert leftover == []


def test_simulator_cli_writes_its_plan_to_kafka_and_its_oracle(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    events, views = make_topic(4, suffix="events"), make_topic(4, suffix="views")
    oracle_path = tmp_path / "oracle.json"
    done = run(
        "-m",
        "tools.simulate",
        f"--bootstrap_servers={kafka_bootstrap}",
        f"--events_topic={events}",
        f"--views_topic={views}",
        f"--oracle={oracle_path}",
        *SMALL,
        timeout_s=SIMULATE_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    oracle = Oracle.from_json(oracle_path.read_text())
    assert end_offsets(kafka_bootstrap, events) == oracle.records_by_topic["property-events"]
    assert end_offsets(kafka_bootstrap, views) == oracle.records_by_topic["property-views"]
    assert "same plan again: python -m tools.simulate" in done.stderr


@pytest.fixture
def demo_stack(session_stack):
    """The services the demo uses, up in the session's stack home (the demo finds them there)."""
    from runners import local

    return session_stack.ensure([*local.DEFAULT_SERVICES, local.PYTHON_WORKERS])


def test_demo_exits_0_when_every_output_matches_the_oracle_and_1_when_not(demo_stack) -> None:
    env = {"PROPERTY_STACK_HOME": str(demo_stack.paths.home)}
    report = REPO / ".local" / "demo" / "report.html"
    started = time.time()
    # With the views half in a worker of its own: the demo starts the stack's worker pool for it.
    ok = run(
        "-m",
        "tools.demo",
        "--runner=PrismRunner",
        "--split_python_workers",
        *SMALL,
        timeout_s=DEMO_TIMEOUT_S,
        env=env,
    )
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert "✓ enriched-property-events" in ok.stdout
    assert "…" not in ok.stdout.split("---")[-1]  # the last summary: every output matched
    assert report.exists() and report.stat().st_mtime >= started, "no HTML report written"
    # No time to match anything: the demo says so with exit status 1, and stops its job.
    short = run(
        "-m",
        "tools.demo",
        "--runner=PrismRunner",
        *SMALL,
        "--timeout_s=0",
        timeout_s=DEMO_TIMEOUT_S,
        env=env,
    )
    assert short.returncode == 1, short.stdout[-3000:] + short.stderr[-3000:]
