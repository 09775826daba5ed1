"""A quiet stream closes its windows: a streaming job that caught up on a backlog emits every
hourly window that ended before the wall clock, on Prism and on Flink, with nothing new written.

The backlog: the live tests' simulated log in real time (1 h windows, 10 min gate lateness, so
Beam's allowed lateness is 70 min), written in full before the job starts, its last record half
an hour before the end of the latest hour that ended at least 2 min ago. So every window of the
log ended before the wall clock, the last one after the last record (the read's CreateTime
watermark never passes it by itself: only the idle partitions' watermark, which Kafka IO moves to
the wall clock, can close it), and the last windows are still within Beam's allowed lateness.
This is stronger than "every window whose end + allowed lateness is behind the wall clock"
(issue 12, item 6), which it includes.

The job reads from the earliest offset, unbounded (no stop condition); its outputs must equal
the simulator's oracle (enriched events: the market-data service's dataset) — every hourly
window with its full count, one record per change — within ``QUIET_TIMEOUT_S`` of the job
running. That bound only fails a test whose windows never come; it says nothing about speed.
Before ``transforms/windowing.py`` grouped DISCARDING panes, Prism failed this: the last hour's
windows were missing after 240 s (they came out only once a window expired, 70 min after its
end); Flink passed.
"""

from __future__ import annotations

import time

import pytest

from runners.marketdata.processes import served_dataset
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tests.integration.live import (
    POLL_S,
    assert_accounted,
    pipeline_argv,
    property_topics,
    quiet_backlog_spec,
    start_job,
)
from tools.simulate import HOUR_MS, generate, produce
from tools.verify import differences, read_outputs, summarize

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# After the job runs: every window must be out by then (a bound on a wait, not a speed claim).
QUIET_TIMEOUT_S = 240


@pytest.mark.parametrize(
    "runner", [pytest.param("FlinkRunner", marks=pytest.mark.flink), "PrismRunner"]
)
def test_quiet_stream_emits_every_window_that_ended(
    runner,
    request,
    kafka_bootstrap,
    expansion_service,
    make_topic,
    local_services,
    record_property,
):
    spec = quiet_backlog_spec(int(time.time() * 1000))
    # The clock of generate() at the span's end: the clock-skewed poison record lands there (its
    # event time, 3 h later, stays more than the 1 h horizon ahead of the wall clock: invalid).
    sim = generate(spec, now_ms=spec.end_ms)
    topics = property_topics(make_topic)
    produce(
        sim.records,
        kafka_bootstrap,
        topics={EVENTS_TOPIC: topics.events, VIEWS_TOPIC: topics.views},
        progress=False,
    )
    window_ends = {int(key.split("|")[1]) + HOUR_MS for key in sim.oracle.hourly_views}
    assert max(window_ends) < time.time() * 1000, "every window of the log has ended"
    assert max(window_ends) > spec.end_ms, "the last window ends after the last record"

    def argv(runner_args: list[str]) -> list[str]:
        return pipeline_argv(
            runner_args, spec, topics, kafka_bootstrap, expansion_service, local_services
        )

    job = start_job(runner, request, argv)
    market = served_dataset(local_services.marketdata_url).lookup
    history: list[str] = []
    try:
        started = time.monotonic()
        while True:
            summary = summarize(read_outputs(kafka_bootstrap, topics, timeout_s=60))
            diffs = differences(summary, sim.oracle, market)
            waited = time.monotonic() - started
            history.append(
                f"{waited:5.0f} s: {len(summary.hourly_views)} of {len(sim.oracle.hourly_views)}"
                f" windows; {diffs[:1]}"
            )
            if not diffs or waited > QUIET_TIMEOUT_S:
                break
            time.sleep(POLL_S)
    finally:
        job.cancel()
    print(f"{runner}:\n" + "\n".join(history))
    record_property("quiet_all_windows_out_s", round(waited, 1))
    assert diffs == [], "\n".join(history)
    assert summary.repeated_hourly_panes == 0
    assert_accounted(summary, sim)
