"""Redis SIGKILLed while a Flink job enriches a live log, then started again, empty.

The job (Flink session cluster) reads a live log and enriches every LISTING_UPDATED event from
the market-data service through a Redis cache of the test's own (``runners.local`` in a private
stack home, so other tests keep a healthy one). At the log's 30th second the redis-server
process is SIGKILLed; at the 45th it is started again on the same port, empty (the stack runs it
without persistence). Redis is an optional helper (``transforms/enrichment/cache.py``,
``redis_store.py``): while it is down a cache read is a miss and a write is skipped. So:

- every LISTING_UPDATED event comes out exactly once, as ENRICHED, FALLBACK or STALE, and every
  other output equals the oracle after de-duplication;
- the job never fails (no entry in its exception history, still RUNNING);
- the cache is used again once Redis is back: the restarted (empty) server holds market entries
  written after the restart and answered reads from them (its own ``keyspace_hits``).
"""

from __future__ import annotations

import signal
import time
from types import SimpleNamespace

import redis

from runners import local
from tests.integration.faults.harness import (
    FLINK_FAULT,
    FaultReport,
    assert_survived,
    flink_live_run,
    private_service,
)
from tests.integration.live import property_topics

pytestmark = list(FLINK_FAULT)

KILL_AT_LOG_S = 30
RESTART_AT_LOG_S = 45
STATUSES = {"ENRICHED", "FALLBACK", "STALE"}
MARKET_KEYS = "market:*"


def redis_facts(url: str) -> dict[str, int]:
    """What a Redis server did since it started: reads answered from a key (hits), reads of a
    missing key (misses), SETs, and how many market-data cache entries it holds."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        stats = client.info("stats")
        commands = client.info("commandstats")
        market_keys = sum(1 for _ in client.scan_iter(MARKET_KEYS, count=1000))
    finally:
        client.close()
    return {
        "hits": int(stats["keyspace_hits"]),
        "misses": int(stats["keyspace_misses"]),
        "sets": int(commands.get("cmdstat_set", {}).get("calls", 0)),
        "market_keys": market_keys,
    }


def test_redis_killed_mid_run_degrades_to_no_cache_and_is_used_again(
    kafka_bootstrap,
    expansion_service,
    flink_session_cluster,
    make_topic,
    local_services,
    tmp_path,
    record_property,
):
    started = time.monotonic()
    home = tmp_path / "redis"
    with private_service(local.REDIS, home) as stack:
        redis_url = stack.redis_url
        topics = property_topics(make_topic)
        services = SimpleNamespace(
            marketdata_url=local_services.marketdata_url, redis_url=redis_url
        )
        with flink_live_run(
            flink_session_cluster, kafka_bootstrap, topics, expansion_service, services
        ) as run:
            run.producer.wait_until_log_second(KILL_AT_LOG_S)
            before_kill = redis_facts(redis_url)
            killed_at = time.monotonic()
            local.kill_process(local.REDIS, signal.SIGKILL, home=home)
            run.producer.wait_until_log_second(RESTART_AT_LOG_S)
            local.restart_process(local.REDIS, home=home)
            down_s = time.monotonic() - killed_at
            verdict, final_state = run.finish()
            failures = run.job.rest.failures(run.job.jid)
        after_restart = redis_facts(redis_url)
    statuses = verdict.summary.enrichment_status
    FaultReport(
        "redis_kill",
        "Flink session cluster",
        len(run.sim.records),
        verdict,
        [],
        notes={
            "enrichment_status": statuses,
            "redis_down_s": round(down_s, 1),
            "redis_before_kill": before_kill,
            "redis_after_restart": after_restart,
            "job_failures": len(failures),
            "job_state": final_state,
        },
        started=started,
    ).emit(record_property)
    assert_survived(verdict, final_state)
    assert failures == [], failures
    assert verdict.duplicates["enriched"] == 0
    assert set(statuses) <= STATUSES, statuses
    assert statuses.get("ENRICHED", 0) > 0, statuses
    # The cache worked before the kill, and again after the restart (the new server is empty).
    assert before_kill["market_keys"] > 0, before_kill
    assert after_restart["market_keys"] > 0, after_restart
    assert after_restart["hits"] > 0, after_restart
