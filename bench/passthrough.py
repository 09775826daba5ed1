"""Passthrough throughput: N records topic A -> topic B on Prism and on Flink, on the local stack.

For each runner: produce N records (200-byte values, spread evenly over the partitions) into a
fresh topic, run ``pipelines.passthrough`` bounded by ``--max_records=N`` and watch the output
topic with a real consumer. Reported per runner:

- ``startup_s``: submit -> first output record (pipeline construction and expansion, job
  submission, Java and Python workers starting, the first bundle);
- ``steady_rps``: records/s between the first and the last output record;
- ``total_s`` / ``end_to_end_rps``: submit -> job DONE, and N / total_s;
- ``tiny_total_s``: the same run for PARTITIONS records (the fixed cost of a run), so that
  ``net_rps = N / (total_s - tiny_total_s)`` is the throughput with start-up subtracted.

Every output record is checked: exactly N, all distinct. Needs the stack:
``python -m runners.local up --flink``. Run:

    python -m bench.passthrough [--records 100000] [--runners prism,flink] [--kafka_config_file F]

``--kafka_config_file`` (or ``$KAFKA_CONFIG_FILE``): the Kafka client properties file of a secured
broker, for the benchmark's admin, producer and consumer and for the passthrough runs; its user
creates the fresh topics, writes the input, reads the output (``bench.kafka_config``).

Results go to stdout and to bench/results/passthrough-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from apache_beam.runners.runner import PipelineState
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench import kafka_config
from bench.kafka_config import client_conf
from pipelines import passthrough
from runners.presets import load_stack_addresses

RUNNERS = {"prism": "PrismRunner", "flink": "FlinkRunner"}
PARTITIONS = 4
VALUE_BYTES = 200
RUN_TIMEOUT_S = 1800
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Measurement:
    runner: str
    records: int
    startup_s: float
    steady_rps: float
    total_s: float
    end_to_end_rps: float
    tiny_total_s: float
    net_rps: float


class OutputWatch:
    """Counts records arriving on a topic, with the time of the first and the last."""

    def __init__(self, bootstrap: str, topic: str, security: Mapping[str, str]) -> None:
        self._consumer = Consumer(
            client_conf(
                bootstrap,
                security,
                {
                    "group.id": f"bench-{uuid.uuid4().hex}",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                },
            )
        )
        self._consumer.subscribe([topic])
        self.keys: set[bytes] = set()
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="output-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(num_messages=10_000, timeout=0.2):
                if message.error():
                    raise RuntimeError(f"consumer error: {message.error()}")
                now = time.monotonic()
                self.first = self.first or now
                self.last = now
                self.count += 1
                self.keys.add(message.key())

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count < count and time.monotonic() < deadline:
            time.sleep(0.2)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


def make_topics(bootstrap: str, security: Mapping[str, str], *names: str) -> None:
    admin = AdminClient(client_conf(bootstrap, security))
    futures = admin.create_topics([NewTopic(n, num_partitions=PARTITIONS) for n in names])
    for future in futures.values():
        future.result(timeout=30)


def produce(bootstrap: str, security: Mapping[str, str], topic: str, count: int) -> None:
    producer = Producer(
        client_conf(bootstrap, security, {"linger.ms": 20, "batch.size": 1_000_000})
    )
    padding = b"x" * VALUE_BYTES
    for i in range(count):
        while True:
            try:
                producer.produce(
                    topic, key=f"key-{i}".encode(), value=padding, partition=i % PARTITIONS
                )
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} records not acknowledged within 120 s")


@dataclass(frozen=True)
class Run:
    """One timed run: seconds from submit to the first and last output record and to DONE."""

    first_s: float
    last_s: float
    total_s: float


def timed_run(runner: str, bootstrap: str, count: int, config_file: str | None = None) -> Run:
    """A passthrough of ``count`` fresh records, checked and timed; every client (ours and the
    pipeline's) connects with ``config_file`` when given."""
    security = kafka_config.security_settings(config_file)
    tag = uuid.uuid4().hex[:8]
    source, sink = f"bench-in-{tag}", f"bench-out-{tag}"
    make_topics(bootstrap, security, source, sink)
    produce(bootstrap, security, source, count)
    watch = OutputWatch(bootstrap, sink, security)
    argv = [
        f"--runner={RUNNERS[runner]}",
        f"--input_topic={source}",
        f"--output_topic={sink}",
        f"--max_records={count}",
        *kafka_config.pipeline_flags(config_file),
    ]
    try:
        started = time.monotonic()
        result = passthrough.start(argv)
        state = result.wait_until_finish(duration=RUN_TIMEOUT_S * 1000)
        total = time.monotonic() - started
        if state != PipelineState.DONE:
            result.cancel()
            raise RuntimeError(f"{runner}: {count} records: ended {state} after {total:.0f} s")
        watch.wait_for(count, timeout_s=60)
    finally:
        watch.close()
    if watch.count != count or len(watch.keys) != count:
        raise RuntimeError(
            f"{runner}: {watch.count} records out ({len(watch.keys)} distinct), expected {count}"
        )
    assert watch.first is not None and watch.last is not None
    return Run(first_s=watch.first - started, last_s=watch.last - started, total_s=total)


def measure(
    runner: str, bootstrap: str, records: int, config_file: str | None = None
) -> Measurement:
    tiny_total = timed_run(runner, bootstrap, PARTITIONS, config_file).total_s
    run = timed_run(runner, bootstrap, records, config_file)
    total = run.total_s
    steady = run.last_s - run.first_s
    return Measurement(
        runner=runner,
        records=records,
        startup_s=round(run.first_s, 2),
        steady_rps=round(records / steady) if steady > 0 else float("inf"),
        total_s=round(total, 2),
        end_to_end_rps=round(records / total),
        tiny_total_s=round(tiny_total, 2),
        net_rps=round(records / (total - tiny_total)) if total > tiny_total else float("inf"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.passthrough", description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runners", default="prism,flink", help="comma-separated: prism,flink")
    kafka_config.add_argument(parser)
    args = parser.parse_args(argv)
    runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    unknown = set(runners) - set(RUNNERS)
    if unknown or args.records % PARTITIONS:
        parser.error(
            f"--runners from {sorted(RUNNERS)} (got {sorted(unknown)}), "
            f"--records a multiple of {PARTITIONS} (balanced partitions)"
        )
    bootstrap = load_stack_addresses().bootstrap_servers
    if not bootstrap:
        parser.error("Kafka is not running: start the stack with `python -m runners.local up`")
    config_file = kafka_config.config_file(args)
    try:
        kafka_config.security_settings(config_file)  # a bad file fails here, not mid-run
    except ValueError as exc:
        parser.error(f"--kafka_config_file: {exc}")
    results = []
    for runner in runners:
        m = measure(runner, bootstrap, args.records, config_file)
        results.append(m)
        print(
            f"{m.runner:<6} {m.records} records: start-up {m.startup_s:.1f} s, "
            f"{m.steady_rps} records/s steady, total {m.total_s:.1f} s "
            f"({m.end_to_end_rps} records/s end to end), fixed cost {m.tiny_total_s:.1f} s "
            f"-> {m.net_rps} records/s net",
            flush=True,
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"passthrough-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps([asdict(m) for m in results], indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
