"""A flapping dependency: the market-data service down 10 s, up 10 s, while a Flink job runs.

The job (Flink session cluster) reads a live log and enriches every LISTING_UPDATED event from
a market-data service of the test's own (a private stack home, so other tests keep a healthy
one), which ``/admin/faults`` turns down (503) and up again every 10 s from the log's 10th
second, 4 times. Cache entries live 5 s (``--cache_ttl_s``), so the outages reach the service
instead of being hidden by the cache. Every LISTING_UPDATED event must come out exactly once,
as ENRICHED, FALLBACK or STALE (a failure never drops an event), and every other output must
equal the oracle: the job never fails.
"""

from __future__ import annotations

import json
import time
import urllib.request
from types import SimpleNamespace

import pytest

from runners import local
from tests.integration.faults.harness import (
    FLINK_FAULT,
    FaultReport,
    LiveProducer,
    judge_until,
    private_service,
)
from tests.integration.live import (
    FlinkJob,
    live_simulation,
    property_topics,
    session_cluster_argv,
)

pytestmark = [
    *FLINK_FAULT,
    # About 3 min; the default fault run keeps one test per fault of issue 15's first items.
    pytest.mark.faults_slow,
]

FLAP_FROM_LOG_S = 10
FLAP_S = 10
FLAPS = 4
STATUSES = {"ENRICHED", "FALLBACK", "STALE"}


def set_down(marketdata_url: str, down: bool) -> None:
    request = urllib.request.Request(
        f"{marketdata_url}/admin/faults",
        data=json.dumps({"down": down}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def test_marketdata_flapping_keeps_every_listing_update_exactly_once(
    kafka_bootstrap,
    expansion_service,
    flink_session_cluster,
    make_topic,
    local_services,
    tmp_path,
    record_property,
):
    started = time.monotonic()
    with private_service(local.MARKETDATA, tmp_path / "marketdata") as stack:
        marketdata = stack.marketdata_url
        topics = property_topics(make_topic)
        argv = session_cluster_argv(
            flink_session_cluster,
            topics,
            kafka_bootstrap,
            expansion_service,
            SimpleNamespace(marketdata_url=marketdata, redis_url=local_services.redis_url),
            extra=["--cache_ttl_s=5"],
        )
        job = FlinkJob(argv, flink_session_cluster.rest_url, None)
        try:
            sim, _ = live_simulation(int(time.time() * 1000))
            producer = LiveProducer(sim, kafka_bootstrap, topics).start()
            for flap in range(FLAPS):
                producer.wait_until_log_second(FLAP_FROM_LOG_S + 2 * flap * FLAP_S)
                set_down(marketdata, True)
                producer.wait_until_log_second(FLAP_FROM_LOG_S + (2 * flap + 1) * FLAP_S)
                set_down(marketdata, False)
            producer.join()
            verdict = judge_until(kafka_bootstrap, topics, sim)
            final_state = job.rest.state(job.jid)
        finally:
            job.cancel()
    statuses = verdict.summary.enrichment_status
    FaultReport(
        "marketdata_flapping",
        "Flink session cluster",
        len(sim.records),
        verdict,
        [],
        notes={"enrichment_status": statuses, "job_state": final_state},
        started=started,
    ).emit(record_property)
    assert verdict.diffs == [], verdict.diffs
    assert verdict.duplicates["enriched"] == 0
    assert set(statuses) <= STATUSES
    assert statuses.get("FALLBACK", 0) + statuses.get("STALE", 0) > 0, statuses
    assert statuses.get("ENRICHED", 0) > 0, statuses
    assert final_state == "RUNNING"
