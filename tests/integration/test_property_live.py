"""The property pipeline live (streaming) on Flink and on Prism, against the simulator's oracle.

A streaming job reads both input topics (unbounded, from the earliest offset) while the simulator
writes them in real time: each record is sent once the wall clock reaches its CreateTime, as the
contract's producers do. The simulated log (listings, views, bots, out-of-order, too-late and
poison records) is the e2e test's, compressed in time ``SPEEDUP`` times so that it runs in minutes:
1 h windows become 30 s, the 10 min lateness and fraud window 5 s, three hours of events 90 s. The
pipeline runs with the same compressed windows, and the oracle is computed for them.

No end markers: once the producer stops, an idle partition's watermark follows the reader's wall
clock (Kafka's CreateTime policy), so the last window closes by itself and the oracle needs no
correction. A Flink job is then cancelled through Flink's REST API (Beam's ``cancel()`` leaves
Flink jobs running: ``runners/flink/``); a Prism job through Beam. On Prism this live log
(CreateTime follows the send time, out of order by at most the compressed 2 s jitter) comes out
exact. Window firing on Flink needs the preset's checkpointing flags
(``runners/flink_event_time.py``), which ``pipelines.property.start`` adds for ``--streaming``.

``test_stop_with_savepoint_and_restart_neither_loses_nor_repeats``: the same live log, stopped
with a savepoint half way (``runners.flink stop``) and resumed from it by a second job, must still
equal the oracle exactly: running counts by zip, fraud counts and open hourly windows survive in
the savepoint, the read resumes at the saved offsets, and no alert, high-value or enriched event
comes out twice. It runs on a Flink session cluster: Beam's Flink runner 2.62 applies
``--savepoint_path`` only when it submits to a cluster (``RemoteStreamEnvironment``); on the
embedded Flink (``[local]``) the option is ignored and the job starts empty ("No checkpoint found
during restore": state lost, records repeated; seen).
"""

from __future__ import annotations

import time

import pytest

from runners.marketdata.processes import served_dataset
from tests.integration.live import (
    MATCH_TIMEOUT_S,
    SPEC,
    SPEEDUP,
    assert_accounted,
    live_simulation,
    pipeline_argv,
    produce_live,
    property_topics,
    restarted_half_way,
    session_cluster_argv,
    start_job,
    wait_for_oracle,
)
from tools.simulate import scaled_spec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.mark.parametrize(
    ("runner", "kafka_read"),
    [
        pytest.param("FlinkRunner", "sdf", marks=pytest.mark.flink, id="FlinkRunner"),
        pytest.param("FlinkRunner", "native", marks=pytest.mark.flink, id="FlinkRunner-native"),
        pytest.param("PrismRunner", "sdf", id="PrismRunner"),
    ],
)
def test_live_run_equals_the_oracle(
    runner,
    kafka_read,
    request,
    kafka_bootstrap,
    expansion_service,
    make_topic,
    local_services,
    record_property,
):
    """``FlinkRunner-native``: both inputs read by the native Flink Kafka source
    (``--kafka_read=native``), whose CreateTime watermark must close the windows as the SDF
    read's does."""
    topics = property_topics(make_topic)
    spec = scaled_spec(SPEC, SPEEDUP)
    extra = []
    if kafka_read == "native":
        service = request.getfixturevalue("flink_expansion_service")
        extra = ["--kafka_read=native", f"--kafka_native_expansion_service={service}"]
    job = start_job(
        runner,
        request,
        lambda runner_args: pipeline_argv(
            runner_args, spec, topics, kafka_bootstrap, expansion_service, local_services, extra
        ),
    )
    try:
        # Compressed from now on: the job runs before the first record is due.
        sim, _ = live_simulation(int(time.time() * 1000))
        started = time.monotonic()
        produce_live(sim, kafka_bootstrap, topics)
        produced_s = time.monotonic() - started
        summary, diffs = wait_for_oracle(
            kafka_bootstrap,
            topics,
            sim,
            MATCH_TIMEOUT_S,
            served_dataset(local_services.marketdata_url).lookup,
        )
        settled_s = time.monotonic() - started - produced_s
    finally:
        job.cancel()
    record_property("live_produce_s", round(produced_s, 1))
    record_property("live_last_record_to_all_outputs_equal_s", round(settled_s, 1))
    print(
        f"{runner}: produced {len(sim.records)} records in {produced_s:.1f} s; outputs equal "
        f"{settled_s:.1f} s after the last one"
        if not diffs
        else f"{runner} differences: {diffs}"
    )
    assert diffs == [], sim.replay
    assert_accounted(summary, sim)


@pytest.mark.flink
def test_stop_with_savepoint_and_restart_neither_loses_nor_repeats(
    kafka_bootstrap,
    expansion_service,
    flink_session_cluster,
    make_topic,
    local_services,
    tmp_path,
    record_property,
):
    topics = property_topics(make_topic)
    group = f"test-live-restart-{time.time_ns()}"
    argv = session_cluster_argv(
        flink_session_cluster,
        topics,
        kafka_bootstrap,
        expansion_service,
        local_services,
        # No --commit_offsets: on this Flink runner it fails the read task at every checkpoint
        # (docs/delivery.md); Flink's savepoint holds the read positions instead.
        extra=[f"--consumer_group={group}"],
    )
    with restarted_half_way(
        SPEC,
        kafka_bootstrap,
        topics,
        argv,
        argv,
        flink_session_cluster.rest_url,
        tmp_path / "savepoints",
        stop_wait_s=120,
        produce_wait_s=180,
    ) as restart:
        summary, diffs = wait_for_oracle(
            kafka_bootstrap,
            topics,
            restart.sim,
            MATCH_TIMEOUT_S,
            served_dataset(local_services.marketdata_url).lookup,
        )
    sim, savepoint = restart.sim, restart.savepoint
    stop_s, restart_s = restart.stop_s, restart.restart_s
    record_property("stop_with_savepoint_s", round(stop_s, 1))
    record_property("restart_from_savepoint_s", round(restart_s, 1))
    print(f"savepoint {savepoint}: stop {stop_s:.1f} s, restart {restart_s:.1f} s; {diffs}")
    assert diffs == [], sim.replay
    assert_accounted(summary, sim)
