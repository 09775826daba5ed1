"""A partition leader killed in a 3-broker cluster while a Flink streaming job runs.

A cluster of the test's own (``runners.local`` with 3 brokers: every topic replicated 3 times,
``min.insync.replicas=2``; the simulator and Kafka IO's producer write with ``acks=all``). Thirty
seconds into the live log the broker leading partition 0 of the input topic is SIGKILLed (no
controlled shutdown: the controller notices it by its missed heartbeats and moves leadership to an
in-sync follower), then started again on its ports with its data; 55 s in, the same for the leader
of partition 0 of an output topic. The job's clients follow the new leaders by themselves.
Judged after de-duplication: nothing lost (an acknowledged write was on 2 replicas, so a new
leader has it), the job still runs; duplicates and the seconds from each kill to the next output
record are reported.
"""

from __future__ import annotations

import signal
import time

import pytest
from confluent_kafka.admin import AdminClient

from runners import local
from tests.integration.faults.harness import (
    ADMIN_TIMEOUT_S,
    FLINK_FAULT,
    QUIET,
    RESUME_TIMEOUT_S,
    FaultReport,
    assert_survived,
    flink_live_run,
    make_topics,
    private_broker,
)

pytestmark = [
    *FLINK_FAULT,
    # About 3.5 min; the default run's broker fault is the single-broker bounce.
    pytest.mark.faults_slow,
]

BROKERS = 3
FAILOVER_TIMEOUT_S = 60.0
#: (second of the live log, which topic's partition-0 leader to kill)
KILLS = ((30, "events"), (55, "enriched"))


def leader_of(admin: AdminClient, topic: str, partition: int = 0) -> int:
    """The node id leading ``topic``'s ``partition`` now (-1: none)."""
    meta = admin.list_topics(topic, timeout=ADMIN_TIMEOUT_S)
    return meta.topics[topic].partitions[partition].leader


def wait_new_leader(admin: AdminClient, topic: str, old: int) -> int:
    """Wait (bounded) until partition 0 of ``topic`` is led by a node other than ``old`` (the
    controller fences a killed broker once its heartbeats stop); returns the new leader."""
    deadline = time.monotonic() + FAILOVER_TIMEOUT_S
    while (leader := leader_of(admin, topic)) in (old, -1):
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}-0 still led by {leader} {FAILOVER_TIMEOUT_S} s after")
        time.sleep(0.5)
    return leader


def test_partition_leaders_killed_in_a_3_broker_cluster_lose_nothing(
    tmp_path, expansion_service, flink_session_cluster, local_services, record_property
):
    started = time.monotonic()
    home = tmp_path / "cluster"
    with private_broker(home, brokers=BROKERS) as stack:
        bootstrap = stack.bootstrap_servers
        topics = make_topics(bootstrap, "leader")
        admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
        killed: list[str] = []
        failover_s: list[float] = []
        recovery: list[float | None] = []
        with flink_live_run(
            flink_session_cluster, bootstrap, topics, expansion_service, local_services
        ) as run:
            failures_before = len(run.job.rest.failures(run.job.jid))
            for second, field in KILLS:
                run.producer.wait_until_log_second(second)
                topic = getattr(topics, field)
                node = leader_of(admin, topic)
                baseline = run.progress.latest()
                killed_at = time.monotonic()
                local.kill_process(local.KAFKA, signal.SIGKILL, role=f"node-{node}", home=home)
                new = wait_new_leader(admin, topic, node)
                failover_s.append(round(time.monotonic() - killed_at, 1))
                local.restart_process(local.KAFKA, role=f"node-{node}", home=home)
                killed.append(f"node-{node} (leader of {field}-0, then node-{new})")
                recovery.append(run.progress.grown_since(killed_at, baseline, RESUME_TIMEOUT_S))
            verdict, final_state = run.finish()
            restarts = len(run.job.rest.failures(run.job.jid)) - failures_before
    FaultReport(
        "leader_kill_3_brokers",
        "Flink session cluster",
        len(run.sim.records),
        verdict,
        recovery,
        notes={
            "killed": killed,
            "leader_moved_after_s": failover_s,
            "restarts": restarts,
            "job_state": final_state,
        },
        started=started,
    ).emit(record_property)
    assert_survived(verdict, final_state, recovery)
