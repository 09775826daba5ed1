"""The property pipeline end to end: simulator -> real Kafka -> pipeline -> every output topic,
compared with the simulator's oracle, on Prism and on Flink (embedded job server).

The input is a replayed backlog: both topics, all partitions full before the pipeline starts,
read from the earliest offset, with too-late, out-of-order and poison records in it. Partitions
race each other (one is read far ahead of another); the late gate decides lateness per
partition, so the outputs must equal the oracle exactly.
"""

from __future__ import annotations

import time

import pytest

from pipelines import property as property_pipeline
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
    from runners import local

    return session_stack.ensure([local.MARKETDATA, local.REDIS])


@pytest.mark.parametrize("runner", ["PrismRunner", "FlinkRunner"])
def test_backlog_replay_outputs_equal_the_oracle(
    runner, request, kafka_bootstrap, expansion_service, make_topic, local_services
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
    result = property_pipeline.start(argv)
    state = result.wait_until_finish(duration=RUN_TIMEOUT_S[runner] * 1000)
    assert str(state).endswith("DONE"), f"{runner} run ended {state}"

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
