"""Broker bounce: the single Kafka broker stopped and restarted while a Flink streaming job runs.

The job (Flink session cluster) reads a live log from a broker of the test's own (a private stack
home: the session's broker and the other tests are not touched). Twenty seconds into the log the
broker gets SIGTERM (controlled shutdown) and is started again on the same port with the same
data; 55 s in, SIGKILL (no shutdown at all: the log is recovered at start) and again a restart.
The simulator keeps writing meanwhile (its idempotent producer buffers and retries), the job's
Kafka clients reconnect by themselves. Judged after de-duplication: nothing lost, the outputs
equal the oracle; duplicates are counted, and the seconds from each restart to the first new
output record are reported.
"""

from __future__ import annotations

import signal
import time

import pytest

from runners import local
from tests.integration.faults.harness import (
    RESUME_TIMEOUT_S,
    FaultReport,
    assert_survived,
    flink_live_run,
    make_topics,
    private_broker,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(900)]

#: (second of the live log, signal): the log lasts about 90 s.
BOUNCES = ((20, signal.SIGTERM), (55, signal.SIGKILL))
BROKER_ROLE = "node-1"


@pytest.mark.flink
def test_broker_bounce_on_flink_loses_nothing(
    tmp_path, expansion_service, flink_session_cluster, local_services, record_property
):
    started = time.monotonic()
    home = tmp_path / "broker"
    with private_broker(home) as stack:
        bootstrap = stack.bootstrap_servers
        topics = make_topics(bootstrap, "bounce")
        recovery: list[float | None] = []
        downtime: list[float] = []
        with flink_live_run(
            flink_session_cluster, bootstrap, topics, expansion_service, local_services
        ) as run:
            for second, sig in BOUNCES:
                run.producer.wait_until_log_second(second)
                baseline = run.progress.latest()
                killed_at = time.monotonic()
                local.kill_process(local.KAFKA, sig, role=BROKER_ROLE, home=home)
                local.restart_process(local.KAFKA, role=BROKER_ROLE, home=home)
                up_at = time.monotonic()
                downtime.append(up_at - killed_at)
                recovery.append(run.progress.grown_since(up_at, baseline, RESUME_TIMEOUT_S))
            verdict, final_state = run.finish()
    FaultReport(
        "broker_bounce",
        "Flink session cluster",
        len(run.sim.records),
        verdict,
        recovery,
        notes={
            "faults": [signal.Signals(s).name for _, s in BOUNCES],
            "broker_down_s": [round(d, 1) for d in downtime],
            "job_state": final_state,
        },
        started=started,
    ).emit(record_property)
    assert_survived(verdict, final_state, recovery)
