"""Scaling of the property pipeline with parallelism on the local session cluster:
``python -m bench.scaling [--parallelism 1,2,4] [--events 1500 --views 6000]``.

Needs the stack of ``docs/operations.md`` running in the default home (or ``--home``)::

    python -m runners.local up                   # Kafka IO's services, Redis, market data
    python -m runners.local down kafka           # when it runs with one broker
    python -m runners.local up kafka flink-cluster flink-job-server python-workers prometheus \\
        --brokers 3 --taskmanagers 2

For each parallelism: fresh 12-partition input topics (replication 3) hold the simulated backlog
(written before the job starts); a streaming job at that parallelism (Python steps in the
EXTERNAL worker pool, one worker per TaskManager) reads it from the earliest offset. Measured,
from the moment all its tasks run: the time until every valid record has passed the keyed late
gate (Beam's counters ``on_time`` + ``late``, read from Prometheus every second), the records per
second that gives, and the CPU seconds of the TaskManagers, the Python and the Java worker
pools per million records (``bench.meter``). The job is then cancelled and the topics deleted.
One run per parallelism: on a shared machine, compare runs taken together only.

``--latency``: instead of the backlog, for each parallelism one ``bench.latency`` run on the
cluster (system ``flink_cluster``): warm-up, then a live log at ``--rate`` records per second
(the same rate for every parallelism) on 12-partition inputs (replication 3, every partition
written), and the end-to-end latency per output path (input send -> output append; p50/p90/p99/
max ms) with the check against the oracle. Results in ``bench/results/scaling-latency.json``.

``--kafka_config_file`` (or ``$KAFKA_CONFIG_FILE``; backlog runs only): the client properties
file of a secured cluster (e.g. ``runners.local up --secure --brokers 3``), used by the
benchmark's admin and simulator producer and given to each job; its user creates, writes, reads
and deletes the ``scaling-*`` topics (``bench.kafka_config``). ``--latency`` runs
``bench.latency``'s plaintext clients and refuses it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import time
import uuid
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from bench import kafka_config
from bench.kafka_config import client_conf
from bench.meter import ProcessMeter
from bench.workload import RESULTS
from pipelines import property as property_pipeline
from pipelines.options import PropertyTopics
from runners import local, prometheus
from runners.flink import FlinkRest, FlinkRestError
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate import SimulationSpec, generate, produce
from transforms.io.kafka import EXPANSION_SERVICE_KEY

PARTITIONS = 12
REPLICATION = 3
GATE_TIMEOUT_S = 900.0


def _topics(bootstrap: str, security: dict[str, str]) -> PropertyTopics:
    admin = AdminClient(client_conf(bootstrap, security))
    names = {}
    for field in vars(PropertyTopics()):
        name = f"scaling-{field}-{uuid.uuid4().hex[:8]}"
        partitions = PARTITIONS if field in ("events", "views") else 2
        admin.create_topics([NewTopic(name, partitions, REPLICATION)])[name].result(timeout=30)
        names[field] = name
    return PropertyTopics(**names)


def _delete(bootstrap: str, topics: PropertyTopics, security: dict[str, str]) -> None:
    admin = AdminClient(client_conf(bootstrap, security))
    for future in admin.delete_topics(list(vars(topics).values())).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def run_one(
    stack: local.Stack,
    session: local.Stack,
    spec: SimulationSpec,
    p: int,
    config_file: str | None = None,
) -> dict:
    """One measured run at parallelism ``p`` (see the module docstring); every Kafka client (ours
    and the job's) connects with ``config_file`` when given."""
    bootstrap = stack.bootstrap_servers
    security = kafka_config.security_settings(config_file)
    topics = _topics(bootstrap, security)
    sim = generate(spec)
    produce(
        sim.records,
        bootstrap,
        topics={EVENTS_TOPIC: topics.events, VIEWS_TOPIC: topics.views},
        progress=False,
        producer_config=security,
    )
    expected = sim.oracle.valid_events + sim.oracle.valid_views + sim.oracle.late
    argv = [
        "--runner=FlinkRunner",
        f"--job_endpoint={stack.job_endpoint}",
        f"--parallelism={p}",
        "--environment_type=EXTERNAL",
        f"--environment_config={stack.python_worker_pool}",
        "--sdk_worker_parallelism=1",
        f"--bootstrap_servers={bootstrap}",
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: session.expansion_service}),
        "--offset_reset=earliest",
        f"--marketdata_url={session.marketdata_url}",
        f"--redis_url={session.redis_url}",
        *(f"--{field}_topic={name}" for field, name in vars(topics).items()),
        *kafka_config.pipeline_flags(config_file),
    ]
    rest = FlinkRest(stack.flink_rest_url)
    since_ms = int(time.time() * 1000)
    result = property_pipeline.start(argv)
    jid = None
    try:
        jid = rest.wait_job_submitted(since_ms, 300)
        roots = {
            p.role: p.pid for p in stack.record(local.FLINK_CLUSTER).processes if "task" in p.role
        }
        roots["python-workers"] = stack.record(local.PYTHON_WORKERS).pid
        roots["java-workers"] = session.record(local.JAVA_WORKERS).pid
        query = (
            f'sum(property_streams_on_time{{job_id="{jid}"}})'
            f' + sum(property_streams_late{{job_id="{jid}"}})'
        )
        started = time.monotonic()
        passed = 0
        with ProcessMeter(roots) as meter:
            while passed < expected and time.monotonic() - started < GATE_TIMEOUT_S:
                time.sleep(1)
                got = prometheus.query(stack.prometheus_url, query)
                passed = int(float(got[0]["value"][1])) if got else 0
            took = time.monotonic() - started
        cpu = sum(meter.cpu_by_process().values())
    finally:
        if jid:
            with contextlib.suppress(FlinkRestError):
                rest.cancel(jid, 60)
        with contextlib.suppress(Exception):
            result.cancel()
        _delete(bootstrap, topics, security)
    return {
        "parallelism": p,
        "records": len(sim.records),
        "through_gate": passed,
        "expected": expected,
        "seconds": round(took, 1),
        "records_per_s": round(passed / took, 1),
        "cpu_s_per_million": round(cpu / len(sim.records) * 1e6),
        "cpu_by_process": meter.cpu_by_process(),
    }


def latency_one(
    stack: local.Stack, session: local.Stack, p: int, rate: float, seed: int
) -> dict[str, Any]:
    """One ``bench.latency`` run of 90 s of live log at ``rate`` records/s at parallelism ``p``
    on the cluster (see the module docstring)."""
    from bench.latency.config import SPEEDUP
    from bench.latency.measure import measure
    from bench.latency.plan import records_for

    span_s = SimulationSpec().span_h * 3600 / SPEEDUP
    roots = {
        proc.role: proc.pid
        for proc in stack.record(local.FLINK_CLUSTER).processes
        if "task" in proc.role
    }
    roots["python-workers"] = stack.record(local.PYTHON_WORKERS).pid
    roots["java-workers"] = session.record(local.JAVA_WORKERS).pid
    extra = [
        f"--job_endpoint={stack.job_endpoint}",
        f"--parallelism={p}",
        "--environment_type=EXTERNAL",
        f"--environment_config={stack.python_worker_pool}",
        "--sdk_worker_parallelism=1",
        f"--bootstrap_servers={stack.bootstrap_servers}",
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: session.expansion_service}),
        f"--marketdata_url={session.marketdata_url}",
        f"--redis_url={session.redis_url}",
    ]
    run = measure(
        "flink_cluster",
        records_for(rate, span_s, 10**7),
        rate,
        rate,
        stack,
        roots,
        seed,
        extra,
        None,
        partitions=PARTITIONS,
        replication=REPLICATION,
    )
    return {"parallelism": p, **dataclasses.asdict(run)}


def print_latency(rows: list[dict[str, Any]]) -> None:
    """One line per parallelism and output path."""
    from bench.latency.config import PATHS

    print(f"\n{'p':>2} {'path':<14} {'n':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} ok")
    for r in rows:
        for path in PATHS:
            st = r["paths"].get(path, {})
            cells = (st.get(k, "-") for k in ("count", "p50", "p90", "p99", "max"))
            n, *ms = cells
            print(
                f"{r['parallelism']:>2} {path:<14} {n:>6}"
                + "".join(f" {v:>7}" for v in ms)
                + f" {r['correct']}"
            )
        print(
            f"   {r['records']} records at {r['achieved_eps']}/s, {r['cpu_s_per_million']}"
            f" CPU-s/M; enriched p50 by fifth {r['paths'].get('enriched', {}).get('trend_p50')}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--parallelism", default="1,2,4", help="comma-separated")
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--views", type=int, default=6000)
    parser.add_argument("--home", help="stack home of the cluster (default: .local)")
    parser.add_argument(
        "--latency", action="store_true", help="live log latency per parallelism instead"
    )
    parser.add_argument(
        "--rate", type=float, default=100.0, help="--latency: live records/s (every p)"
    )
    parser.add_argument("--seed", type=int, default=7, help="--latency: the simulation's seed")
    kafka_config.add_argument(parser)
    args = parser.parse_args(argv)
    config_file = kafka_config.config_file(args)
    if args.latency and config_file:
        parser.error(
            "--latency runs bench.latency's plaintext clients: it takes no --kafka_config_file "
            "(nor $KAFKA_CONFIG_FILE); measure latency on a plaintext cluster"
        )
    try:
        kafka_config.security_settings(config_file)  # a bad file fails here, not mid-run
    except ValueError as exc:
        parser.error(f"--kafka_config_file: {exc}")
    stack = local.Stack.load(args.home)
    session = local.Stack.load()
    for service in (local.KAFKA, local.FLINK_CLUSTER, local.PYTHON_WORKERS, local.PROMETHEUS):
        stack.check_alive(service)
    spec = dataclasses.replace(
        SimulationSpec(),
        events=args.events,
        views=args.views,
        partitions=PARTITIONS,
    )
    if args.latency:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
        runs = []
        for p in (int(x) for x in args.parallelism.split(",")):
            runs.append(latency_one(stack, session, p, args.rate, args.seed))
            print_latency(runs[-1:])
        print_latency(runs)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / "scaling-latency.json"
        out.write_text(json.dumps({"rate": args.rate, "results": runs}, indent=1) + "\n")
        print(f"results: {out}")
        return 0 if all(r["correct"] for r in runs) else 1
    rows = []
    for p in (int(x) for x in args.parallelism.split(",")):
        row = run_one(stack, session, spec, p, config_file)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'p':>2} {'records':>8} {'s':>7} {'rec/s':>7} {'CPU-s/M':>8}")
    for r in rows:
        print(
            f"{r['parallelism']:>2} {r['records']:>8} {r['seconds']:>7} {r['records_per_s']:>7}"
            f" {r['cpu_s_per_million']:>8}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
