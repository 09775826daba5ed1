"""The property pipeline end to end: simulator -> real Kafka -> pipeline -> every output topic,
compared with the simulator's oracle, on Prism and on Flink (embedded job server).

The input is a replayed backlog: both topics, all partitions full before the pipeline starts,
read from the earliest offset, with too-late, out-of-order and poison records in it. Partitions
race each other (one is read far ahead of another); the late gate decides lateness per
partition, so the outputs must equal the oracle exactly.
"""

from __future__ import annotations

import re
import time

import pytest

from pipelines import property as property_pipeline
from runners import local
from runners.marketdata.processes import served_dataset
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tests.integration.live import backfill_argv, property_topics
from tools.simulate import SimulationSpec, generate, produce
from tools.verify import differences, read_outputs, summarize

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

SPEC = SimulationSpec(
    properties=120, users=80, events=1_500, views=6_000, bots=2, too_late=12, poison_per_class=1
)
RUN_TIMEOUT_S = {"PrismRunner": 420, "FlinkRunner": 720}


@pytest.fixture(scope="module")
def local_services(session_stack):
    """The market-data service and Redis of the local stack (started when not running)."""
    return session_stack.ensure([local.MARKETDATA, local.REDIS])


@pytest.mark.parametrize(
    ("runner", "split"),
    [
        pytest.param("PrismRunner", False, id="PrismRunner"),
        pytest.param("FlinkRunner", False, id="FlinkRunner"),
        # The views half in a worker process of its own, both from the stack's pool (the runner
        # presets fill in --environment_type=EXTERNAL): two Python workers in one Prism job.
        pytest.param("PrismRunner", True, id="PrismRunner-split"),
        # The same on Flink: a backfill's views in two parts of disjoint partitions, one per
        # worker (pipelines/property.py, VIEWS_PARTITION_SHARES), each with its own late gate.
        pytest.param("FlinkRunner", True, id="FlinkRunner-split"),
    ],
)
def test_backlog_replay_outputs_equal_the_oracle(
    runner, split, request, kafka_bootstrap, expansion_service, make_topic, local_services
):
    sim = generate(SPEC)
    topics = property_topics(make_topic)
    produce(
        sim.records,
        kafka_bootstrap,
        topics={EVENTS_TOPIC: topics.events, VIEWS_TOPIC: topics.views},
        progress=False,
    )
    # The README's backfill: a stop time after the last record, so every partition is quiet.
    stop_ms = int(time.time() * 1000) + 1

    argv = backfill_argv(
        runner, request, topics, kafka_bootstrap, expansion_service, local_services, stop_ms
    )
    pool_log, pool_log_start = None, 0
    if split:
        stack = request.getfixturevalue("session_stack").ensure([local.PYTHON_WORKERS])
        pool_log = stack.log_path(local.PYTHON_WORKERS)
        pool_log_start = pool_log.stat().st_size if pool_log.exists() else 0
        argv.append("--split_python_workers")
    result = property_pipeline.start(argv)
    state = result.wait_until_finish(duration=RUN_TIMEOUT_S[runner] * 1000)
    assert str(state).endswith("DONE"), f"{runner} run ended {state}"
    if pool_log is not None:
        # Prism: one worker process per environment, the default one and the views group's;
        # Flink: per environment and per SDK harness its job asks for (at least the two).
        with pool_log.open("rb") as log:
            log.seek(pool_log_start)
            started = set(re.findall(rb"python-harness: starting worker (\S+)", log.read()))
        assert len(started) == 2 if runner == "PrismRunner" else len(started) >= 2, started

    summary = summarize(read_outputs(kafka_bootstrap, topics, timeout_s=120))
    # Enrichment checked against the dataset the service serves: a run where every event fell
    # back (service unreachable, cache misused) differs here, not only in the ids.
    market = served_dataset(local_services.marketdata_url).lookup
    assert differences(summary, sim.oracle, market) == [], sim.replay
    # One record per change of a window's count on every runner (Prism repeated each window's
    # last pane at its expiry when the grouping accumulated; transforms/windowing.py).
    assert summary.repeated_hourly_panes == 0
    # Every input record is accounted for: counted (valid), dead-lettered or late.
    assert (
        sim.oracle.valid_events + sim.oracle.valid_views + summary.dead_letters + summary.late
        == sum(sim.oracle.records_by_topic.values())
    )
