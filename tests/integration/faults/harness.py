"""The fault harness: break something while a live run flows, then judge the outputs.

A fault test starts a live run (``tests/integration/live.py``: the job reads while the simulator
writes in real time), injects faults at given moments of the log (seconds after its first
record), waits (bounded) for the log to be produced and the outputs to settle, and judges them
against the simulator's oracle after de-duplication (``tools.verify.judge``, the keys of
``docs/delivery.md``): records lost (must be 0), duplicates per output (counted, reported) and
how long the output took to resume after each fault.

Every process the harness starts is stopped by it (``finally``), every wait is bounded in time
and every loop in count. A private broker (``private_broker``) lives in its own stack home, so a
test may kill it without touching the session's broker.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines import property as property_pipeline
from pipelines.options import PropertyTopics
from runners import local, toxiproxy
from runners.flink import FlinkRest
from runners.marketdata.processes import served_dataset
from runners.toxiproxy import Toxiproxy
from tests.integration.live import (
    POLL_S,
    FlinkJob,
    live_simulation,
    produce_live,
    property_topics,
    session_cluster_argv,
)
from tools.simulate import Simulation
from tools.verify import Judgement, Summary, differences, judge, read_outputs, summarize

#: The marks of a fault test on the Flink session cluster (a live run takes minutes).
FLINK_FAULT = (
    pytest.mark.integration,
    pytest.mark.faults,
    pytest.mark.flink,
    pytest.mark.timeout(900),
)

ADMIN_TIMEOUT_S = 30.0
SAMPLE_S = 0.5
#: After the last record was sent: the de-duplicated outputs must equal the oracle by then.
SETTLE_TIMEOUT_S = 120.0
#: How long the output may take to resume after a fault before the test says it did not.
RESUME_TIMEOUT_S = 120.0
PRODUCE_JOIN_S = 300.0
#: From a killed worker to the job's tasks all running again.
RESTART_TIMEOUT_S = 240.0
#: librdkafka logs every refused reconnection while a broker is down (20 lines a second): the
#: harness's own clients log only critical errors; the test's verdict says what happened.
QUIET = {"log_level": "2"}


@contextlib.contextmanager
def private_broker(home: Path, brokers: int = 1, proxied: bool = False) -> Iterator[local.Stack]:
    """A Kafka cluster (KRaft, ``brokers`` nodes) of its own in stack home ``home``, on free
    ports, with a listener per broker for a proxy when ``proxied``; stopped (whatever state a
    fault left it in) when the block ends."""
    try:
        yield local.ensure_up(
            [local.KAFKA],
            brokers=brokers,
            home=home,
            port_overrides={local.KAFKA: 0},
            create_topics=False,
            proxied=proxied,
        )
    finally:
        local.down(home=home, say=lambda _msg: None)


@contextlib.contextmanager
def private_service(service: str, home: Path) -> Iterator[local.Stack]:
    """One service of the local stack (``local.REDIS``, ``local.MARKETDATA``...) of its own in
    stack home ``home``, on a free port, for a test that breaks it; stopped when the block ends."""
    try:
        yield local.ensure_up([service], home=home, port_overrides={service: 0})
    finally:
        local.down(home=home, say=lambda _msg: None)


@contextlib.contextmanager
def toxiproxied(stack: local.Stack, log_path: Path) -> Iterator[tuple[Toxiproxy, list[str]]]:
    """A Toxiproxy server in front of every broker of a ``proxied`` stack: yields the client and
    the proxies' names (``broker-1``...), one per broker; clients bootstrapped at
    ``stack.proxied_bootstrap_servers`` go through them. Stopped when the block ends."""
    with toxiproxy.server(log_path) as proxy:
        names = []
        for i, (listen, upstream) in enumerate(stack.proxy_routes, start=1):
            proxy.create_proxy(f"broker-{i}", listen, upstream)
            names.append(f"broker-{i}")
        if not names:
            raise AssertionError("the stack has no proxied listener (private_broker(proxied=True))")
        yield proxy, names


def make_topics(bootstrap: str, stem: str) -> PropertyTopics:
    """Fresh input and output topics on ``bootstrap`` (the e2e test's partitioning)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def make(partitions: int = 4, suffix: str = "") -> str:
        name = f"fault-{stem}-{suffix}-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(name, num_partitions=partitions)])[name].result(
            timeout=ADMIN_TIMEOUT_S
        )
        return name

    return property_topics(make)


def output_topics(topics: PropertyTopics) -> list[str]:
    return [name for field_, name in vars(topics).items() if field_ not in ("events", "views")]


class OutputProgress:
    """Samples, every ``SAMPLE_S`` in a thread, how many records the output topics hold (the sum
    of their high watermarks); a sample that fails (broker down) is skipped. Tells when the
    output grew again after a fault."""

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"progress-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "socket.timeout.ms": 2000,
                **QUIET,
            }
        )
        self._topics = list(topics)
        self._partitions: dict[str, list[int]] = {}
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="output-progress", daemon=True)

    def _total(self) -> int:
        total = 0
        for topic in self._topics:
            if topic not in self._partitions:
                meta = self._consumer.list_topics(topic, timeout=2)
                self._partitions[topic] = sorted(meta.topics[topic].partitions)
            for p in self._partitions[topic]:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=2
                )
                total += high
        return total

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            try:
                total = self._total()
            except (KafkaException, KeyError):
                continue
            self.samples.append((time.monotonic(), total))

    def latest(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def grown_since(self, since: float, baseline: int, timeout_s: float) -> float | None:
        """Seconds from ``since`` (monotonic) to the first sample after it above ``baseline``;
        None when none came within ``timeout_s`` of ``since``."""
        deadline = since + timeout_s
        while True:
            for t, total in list(self.samples):
                if t >= since and total > baseline:
                    return t - since
            if time.monotonic() > deadline:
                return None
            time.sleep(SAMPLE_S)

    def __enter__(self) -> OutputProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


class LiveProducer:
    """The simulator writing the live log in a thread; ``join`` re-raises its failure."""

    def __init__(self, sim: Simulation, bootstrap: str, topics: PropertyTopics) -> None:
        self.sim = sim
        self.error: BaseException | None = None
        self.first_record_s = sim.records[0].timestamp_ms / 1000  # epoch s of the first send

        def run() -> None:
            try:
                produce_live(sim, bootstrap, topics, producer_config=QUIET)
            except BaseException as exc:  # re-raised by join()
                self.error = exc

        self._thread = threading.Thread(target=run, name="live-producer", daemon=True)

    def start(self) -> LiveProducer:
        self._thread.start()
        return self

    def wait_until_log_second(self, second: float) -> None:
        """Sleep until ``second`` seconds after the log's first record (wall clock)."""
        wait_s = self.first_record_s + second - time.time()
        if wait_s > 0:
            time.sleep(wait_s)

    def join(self, timeout_s: float = PRODUCE_JOIN_S) -> None:
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            raise AssertionError(f"the live log was not produced within {timeout_s:.0f} s")
        if self.error is not None:
            raise AssertionError(f"the live producer failed: {self.error}") from self.error


def judge_until(
    bootstrap: str,
    topics: PropertyTopics,
    sim: Simulation,
    timeout_s: float = SETTLE_TIMEOUT_S,
    done: Callable[[Judgement], bool] | None = None,
) -> Judgement:
    """Judge the outputs every ``POLL_S`` until ``done(verdict)`` (default: nothing differs from
    the oracle after de-duplication) or ``timeout_s`` passed; returns the last verdict."""
    done = done or (lambda verdict: not verdict.diffs)
    deadline = time.monotonic() + timeout_s
    while True:
        verdict = judge(read_outputs(bootstrap, topics, timeout_s=60), sim.oracle)
        if done(verdict) or time.monotonic() > deadline:
            return verdict
        time.sleep(POLL_S)


@dataclass
class FaultReport:
    """What one fault test measured, printed and recorded in the JUnit XML."""

    test: str
    runner: str
    input_records: int
    verdict: Judgement
    recovery_s: list[float | None] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def emit(self, record_property: Callable[[str, object], None]) -> None:
        duration_s = round(time.monotonic() - self.started, 1)
        facts = {
            "runner": self.runner,
            "input_records": self.input_records,
            "output_records": self.verdict.total_records,
            "lost": self.verdict.lost,
            "duplicates": self.verdict.duplicates,
            "recovery_s": [None if r is None else round(r, 1) for r in self.recovery_s],
            "duration_s": duration_s,
            **self.notes,
        }
        for key, value in facts.items():
            record_property(key, value)
        print(f"FAULT {self.test}: {facts}")


@dataclass
class LiveRun:
    """A Flink streaming job reading a live log that the simulator is writing: what a fault test
    breaks things under. ``bootstrap`` is where the test's own clients (simulator, progress,
    judge) reach Kafka; the job may reach it elsewhere (through a proxy)."""

    job: FlinkJob
    progress: OutputProgress
    producer: LiveProducer
    bootstrap: str
    topics: PropertyTopics

    @property
    def sim(self) -> Simulation:
        return self.producer.sim

    def finish(self) -> tuple[Judgement, str]:
        """Wait (bounded) for the whole log to be written and the outputs to equal the oracle
        after de-duplication; returns the last verdict and the job's state then."""
        self.producer.join()
        verdict = judge_until(self.bootstrap, self.topics, self.sim)
        return verdict, self.job.rest.state(self.job.jid)


@contextlib.contextmanager
def flink_live_run(
    cluster,
    bootstrap: str,
    topics: PropertyTopics,
    expansion_service: str,
    services,
    *,
    pipeline_bootstrap: str | None = None,
    extra: Sequence[str] = (),
) -> Iterator[LiveRun]:
    """Submit the pipeline (``tests/integration/live.py``'s compressed time) to the session
    cluster ``cluster`` reading and writing ``topics`` at ``pipeline_bootstrap`` (default
    ``bootstrap``), then start the live log and the output sampling; the job is cancelled when
    the block ends."""
    argv = session_cluster_argv(
        cluster, topics, pipeline_bootstrap or bootstrap, expansion_service, services, extra
    )
    job = FlinkJob(argv, cluster.rest_url, None)
    try:
        with OutputProgress(bootstrap, output_topics(topics)) as progress:
            sim, _ = live_simulation(int(time.time() * 1000))
            producer = LiveProducer(sim, bootstrap, topics).start()
            yield LiveRun(job, progress, producer, bootstrap, topics)
    finally:
        job.cancel()


def assert_survived(
    verdict: Judgement, final_state: str, recovery: Sequence[float | None] = ()
) -> None:
    """The verdict of every fault test: nothing differs from the oracle after de-duplication,
    nothing lost, the output resumed after every fault, and the job still runs."""
    assert verdict.diffs == [], verdict.diffs
    assert verdict.total_lost == 0
    assert None not in recovery, f"output did not resume within {RESUME_TIMEOUT_S} s: {recovery}"
    assert final_state == "RUNNING"


def wait_restarted(rest: FlinkRest, jid: str, failures_before: int) -> None:
    """Wait (bounded) until ``jid`` has failed once more (its exception history, updated at
    once, unlike the numRestarts metric) and all its tasks run again."""
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while len(rest.failures(jid)) <= failures_before:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {jid} not restarted {RESTART_TIMEOUT_S:.0f} s after")
        time.sleep(1)
    rest.wait_tasks_running(jid, max(1.0, deadline - time.monotonic()))


def backfill_equals_the_oracle(
    argv: list[str],
    sim: Simulation,
    bootstrap: str,
    topics: PropertyTopics,
    marketdata_url: str,
    run_timeout_s: float,
    read_timeout_s: float,
) -> tuple[dict, Summary, float]:
    """Runs the backfill ``argv`` to DONE and asserts that every output equals ``sim``'s oracle
    (enrichment judged against the served market data); returns the outputs read, their summary
    and the run's seconds."""
    run_at = time.monotonic()
    result = property_pipeline.start(argv)
    state = result.wait_until_finish(duration=int(run_timeout_s * 1000))
    run_s = time.monotonic() - run_at
    assert str(state).endswith("DONE"), f"the run ended {state} ({sim.replay})"
    outputs = read_outputs(bootstrap, topics, timeout_s=read_timeout_s)
    summary = summarize(outputs)
    market = served_dataset(marketdata_url).lookup
    assert differences(summary, sim.oracle, market) == [], sim.replay
    return outputs, summary, run_s
