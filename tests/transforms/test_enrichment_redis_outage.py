"""A Redis outage degrades EnrichWithMarketData to no cache, never a failed bundle.

A real redis-server on a fixed loopback port is SIGKILLed (connection refused), SIGSTOPped
(timeouts) and restarted on the same port, between runs and in the middle of one (a step of the
test pipeline, just before the enrichment, does it at an exact element count: the DirectRunner
processes a fused stage element by element, so each event's cache read, call and cache write
happen before the next event reaches that step). The market-data service stays healthy: every
event must come out exactly once and ENRICHED, the counters must account for every cache command
that failed, and the cache must answer again once Redis is back.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import pytest
import redis as redis_client

from runners.marketdata.processes import (
    MarketDataServer,
    free_port,
    redis_server_binary,
)
from tests.transforms.enrichment_support import (
    SPREAD_KEYS,
    assert_accounted,
    fast,
    run,
    spread_events,
    statuses,
)
from transforms.enrichment import ENRICHED, EnrichWithMarketData

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


class RestartableRedis:
    """A throw-away redis-server (no persistence) on one fixed loopback port, which the test can
    SIGKILL, SIGSTOP/SIGCONT and start again on the same port."""

    def __init__(self, port: int) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    def start(self, timeout_s: float = 15.0) -> None:
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(
            [
                *(redis_server_binary(), "--bind", self.host, "--port", str(self.port)),
                *("--save", "", "--appendonly", "no", "--protected-mode", "yes"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis_client.Redis(self.host, self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
                try:
                    if client.ping():
                        return
                except redis_client.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server not answering after {timeout_s} s")
                time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL, and wait until it is gone (its port then refuses connections)."""
        assert self.proc is not None, "not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None
        self.paused = False

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def market_keys(self) -> int:
        client = redis_client.Redis(self.host, self.port, socket_timeout=2)
        try:
            return len(client.keys("market:*"))
        finally:
            client.close()


@pytest.fixture
def fresh_redis() -> Iterator[RestartableRedis]:
    server = RestartableRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# Fault plans of the running test, looked up by id from the pipeline step (the DirectRunner runs
# the pipeline in this process; a missing plan fails the step, hence the test).
_PLANS: dict[str, FaultPlan] = {}


class FaultPlan:
    """Before the element numbered ``n`` (in processing order) reaches the enrichment, run the
    action planned for ``n``; counts the elements seen."""

    def __init__(self, actions: dict[int, str], server: RestartableRedis) -> None:
        self.plan_id = uuid.uuid4().hex
        self.actions = actions
        self.server = server
        self.seen = 0
        self.done: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> FaultPlan:
        _PLANS[self.plan_id] = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        del _PLANS[self.plan_id]

    def step(self) -> None:
        with self._lock:
            n = self.seen
            self.seen += 1
            action = self.actions.get(n)
            if action == "kill":
                self.server.kill()
            elif action == "start":
                self.server.start()
            if action:
                self.done.append((n, action))


class _ApplyFaultPlan(beam.DoFn):
    def __init__(self, plan_id: str) -> None:
        self._plan_id = plan_id

    def process(self, element: object) -> Iterator[object]:
        _PLANS[self._plan_id].step()
        yield element


def apply(plan: FaultPlan) -> beam.PTransform:
    return beam.ParDo(_ApplyFaultPlan(plan.plan_id))


def cached(
    service: MarketDataServer, redis: RestartableRedis, **cache: int
) -> EnrichWithMarketData:
    # Generous timeouts: these tests count calls and cache errors exactly, and a call or a Redis
    # command timing out on a loaded machine would add a retry or an error that no fault caused
    # (a killed Redis refuses connections at once; the hung-Redis test sets its own timeout).
    return fast(service.url, call_timeout_s=10.0).with_redis_cache(
        redis.host, redis.port, 300, timeout_s=5.0, **cache
    )


def test_redis_killed_between_runs_degrades_to_no_cache_and_is_used_again_once_restarted(
    service: MarketDataServer, fresh_redis: RestartableRedis, tmp_path: Path
) -> None:
    n = 200
    events = spread_events(n)
    warm, counters = run(events, cached(service, fresh_redis), tmp_path)
    assert statuses(warm) == {ENRICHED: n}
    assert counters.get("cache_hits", 0) + counters["calls"] == n
    assert fresh_redis.market_keys() == SPREAD_KEYS

    fresh_redis.kill()
    outputs, counters = run(events, cached(service, fresh_redis), tmp_path)
    assert_accounted(outputs, n)
    assert statuses(outputs) == {ENRICHED: n}  # from the service: every read missed
    assert counters["calls"] == n and counters.get("cache_hits", 0) == 0
    # Each event: its read failed, then the write of its fresh answer failed.
    assert counters["cache_errors"] == 2 * n

    fresh_redis.start()  # same port, empty (no persistence)
    calls_before = service.stats()["market_requests"]
    outputs, counters = run(events, cached(service, fresh_redis), tmp_path)
    assert statuses(outputs) == {ENRICHED: n}
    assert counters.get("cache_hits", 0) + counters["calls"] == n
    assert counters.get("cache_errors", 0) == 0
    assert service.stats()["market_requests"] - calls_before == counters["calls"]
    assert fresh_redis.market_keys() == SPREAD_KEYS

    outputs, counters = run(events, cached(service, fresh_redis), tmp_path)
    assert statuses(outputs) == {ENRICHED: n}
    assert counters["cache_hits"] == n and counters.get("calls", 0) == 0


@pytest.mark.parametrize("stale_ttl_s", [0, 600], ids=["cache", "cache-and-stale-copies"])
def test_redis_down_then_back_then_killed_within_a_run_every_event_enriched_exactly_once(
    service: MarketDataServer, fresh_redis: RestartableRedis, tmp_path: Path, stale_ttl_s: int
) -> None:
    # Elements 0-99: Redis down (killed before the run); 100-199: restarted, empty;
    # 200-299: SIGKILLed again, with the pipeline's connections open.
    n, back_at, killed_at = 300, 100, 200
    fresh_redis.kill()
    with FaultPlan({back_at: "start", killed_at: "kill"}, fresh_redis) as plan:
        transform = cached(service, fresh_redis, stale_ttl_s=stale_ttl_s)
        outputs, counters = run(spread_events(n), transform, tmp_path, before=apply(plan))
    assert plan.seen == n and plan.done == [(back_at, "start"), (killed_at, "kill")]
    assert_accounted(outputs, n)
    assert statuses(outputs) == {ENRICHED: n}
    # Redis down for 200 events: one failed read and one failed write each, nothing else failed.
    assert counters["cache_errors"] == 2 * (n - (killed_at - back_at))
    # While it was up, each key missed at most once (the answer is written before the next
    # event is read), every other event was a cache hit.
    assert counters["cache_hits"] >= (killed_at - back_at) - SPREAD_KEYS
    assert counters["cache_hits"] + counters["calls"] == n
    assert service.stats()["market_requests"] == counters["calls"]


def test_hung_redis_times_out_to_no_cache_and_answers_again_when_it_resumes(
    service: MarketDataServer, fresh_redis: RestartableRedis, tmp_path: Path
) -> None:
    n = 10
    events = spread_events(n)

    def transform(redis_timeout_s: float = 5.0) -> EnrichWithMarketData:
        return fast(service.url, call_timeout_s=10.0).with_redis_cache(
            fresh_redis.host, fresh_redis.port, 300, timeout_s=redis_timeout_s
        )

    run(events, transform(), tmp_path)  # warm: every key cached
    fresh_redis.pause()  # accepts connections (the kernel does), answers nothing
    # Any finite timeout expires on a Redis that never answers; a short one keeps the run short.
    outputs, counters = run(events, transform(redis_timeout_s=0.2), tmp_path)
    assert_accounted(outputs, n)
    assert statuses(outputs) == {ENRICHED: n}
    assert counters["calls"] == n and counters.get("cache_hits", 0) == 0
    assert counters["cache_errors"] == 2 * n
    fresh_redis.resume()
    outputs, counters = run(events, transform(), tmp_path)
    assert statuses(outputs) == {ENRICHED: n}
    assert counters["cache_hits"] == n and counters.get("cache_errors", 0) == 0
