"""Side by side: the property pipeline on Prism and on Flink vs a raw confluent-kafka loop.

    python -m bench.compare [--events 500000 | --small] [--systems raw,quix,prism,flink]

One run, one broker, one simulated input (``tools.simulate``, fixed seed):

1. Starts a private local stack under ``.local/bench-stack`` (Kafka, Beam's Java workers and
   expansion service, the Flink job server when Flink is measured) so that no other user of the
   shared stack disturbs the measurement, and stops it at the end (``--keep_stack`` keeps it).
   No market-data service runs: every system enriches LISTING_UPDATED events as FALLBACK —
   unless ``--market_data known|unknown``: then the stack also runs the market-data service and
   Redis, the Beam pipelines enrich over HTTP with the Redis cache (its defaults: 1 h for market
   data, ``--cache_not_found_ttl_s`` for "no data"), both are metered with them, and the input's
   zip codes are all in the market dataset (``known``) or all outside it (``unknown``: every key a
   404, as many distinct keys as ``known``); the peers still write FALLBACK.
2. Simulates ``--events`` input records (1 property event : 4 views, plus bots, out-of-order,
   too-late and poison records) into two fresh input topics, then one end marker per input
   partition at the stop time (a bounded Beam read stops before it, as ``tools.demo`` does).
3. Runs each system, one at a time, into its own fresh output topics (created with
   ``LogAppendTime``, so every output record carries the broker's append time):

   - ``kstreams``: the seed's topology on Kafka Streams (Java, ``bench.kstreams_peer``; its
     differences from the oracle are reported, not fixed: see ``bench/kstreams``);
   - ``raw``: ``bench.raw_loop`` in this process (decode → validate → late gate → route → encode
     → produce, the full topology in dicts; see its docstring for what it covers);
   - ``prism`` / ``flink``: ``pipelines.property`` as a bounded backfill (``--stop_read_time_ms``)
     on Prism, and on Flink's embedded cluster through Beam's Flink job server;
   - ``flink_cluster`` (only when asked: ``--systems ...,flink_cluster``): the same on a real
     Flink session cluster (the JobManager and TaskManager JVMs of ``runners.local``'s
     ``flink-cluster``), submitted through the same job server with ``--flink_master`` (the job
     server's own default stays the embedded Flink, so both can run in one bench);
   - ``flink_pool`` (only when asked): the embedded Flink with the Python steps in Beam's process
     worker pool (``runners.local``'s ``python-workers``, ``--environment_type=EXTERNAL``), two
     SDK worker processes and two subtasks instead of one LOOPBACK process (issue 18, item 6);
   - ``prism_split``: Prism with ``--split_python_workers``, the views half in a Python worker
     process of its own, both workers from the stack's pool (``pipelines/worker_groups.py``);
     ``flink_split``: the same on the embedded Flink.

Metrics per system:

- ``startup_s``: start → first record consumed (raw) / first output record appended (Beam: its
  Kafka read exposes no consumer position, so the output side is the observable one);
- ``sustained_eps``: input records / (first → last input consumed) for the raw loop; for the Beam
  pipelines input records / (first → last output appended) — an upper bound, since a runner may
  buffer outputs and write them in a burst; ``end_to_end_eps`` = input records / (start → last
  output appended) is the conservative figure;
- ``cpu_s_per_million``: CPU seconds (user + system, psutil) of every process involved (this
  Python process and its children such as Prism, the Kafka broker, and for Beam the Java workers,
  the expansion service and the Flink job server) per million input records;
- ``peak_rss_mb``: the peak of the summed resident memory of those processes (sampled every 0.5 s);
- ``correct``: the outputs read back and compared with the simulator's oracle
  (``tools.verify``): a fast wrong answer is not a result.

Results: a table on stdout with ratios to the raw loop, ``bench/results/compare.json``, and
``bench/results/compare.html`` + ``compare.png`` (``bench.report``).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import kafka_config
from bench.kafka_io import append_times, create_topics, end_offsets, mark_end
from bench.meter import ProcessMeter
from bench.stack import ensure_quix_venv, start_stack
from bench.workload import (
    DEFAULT_EVENTS,
    OPTIONAL_SYSTEMS,
    OUTPUT_FIELDS,
    POOL_SYSTEMS,
    REPO_ROOT,
    RESULTS,
    RUNNERS,
    SMALL_EVENTS,
    SYSTEMS,
    flink_master_flags,
    python_pool_flags,
    scaled_spec,
    split_flags,
    system_topics,
    topic_flags,
)
from pipelines.options import PropertyTopics
from runners.local.services import MARKETDATA, REDIS
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate import (
    HOUR_MS,
    generate,
    produce,
)
from tools.verify import differences, read_outputs, summarize

LOG = logging.getLogger(__name__)

DEFAULT_HOME = REPO_ROOT / ".local" / "bench-stack"
# The session cluster's processes, metered under these names (runners.local's roles).
FLINK_CLUSTER_ROLES = ("jobmanager", "taskmanager")
RUN_TIMEOUT_S = 3600
MARKET_DATA_MODES = ("off", "known", "unknown")
QUIX_IDLE_S = 5.0


# ---- plain helpers ------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One system's result (see the module docstring for each metric's definition)."""

    system: str
    records: int
    startup_s: float
    sustained_eps: float
    sustained_basis: str
    total_s: float
    end_to_end_eps: float
    cpu_s: float
    cpu_s_per_million: float
    peak_rss_mb: float
    correct: bool
    differences: list[str] = field(default_factory=list)
    outputs: dict[str, int] = field(default_factory=dict)
    cpu_by_process: dict[str, float] = field(default_factory=dict)
    note: str = ""


def rate(count: int, seconds: float | None) -> float:
    """``count / seconds`` rounded, 0 when the span is unknown or empty."""
    return round(count / seconds) if seconds and seconds > 0 else 0.0


# ---- the systems --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    """What every system of one run shares."""

    bootstrap: str
    tag: str
    inputs: tuple[str, str]
    records: int
    stop_ms: int
    stop_offsets: dict[tuple[str, int], int]
    oracle: object
    pids: dict[str, int]
    flink_rest: str | None = None  # host:port of the session cluster's REST API, when it runs
    # The Beam pipelines' enrichment flags (--marketdata_url, --redis_url), empty when it is off.
    market_flags: tuple[str, ...] = ()
    python_pool: str | None = None  # host:port of the Python worker pool, when it runs


def _verify(bench: Bench, topics: PropertyTopics) -> tuple[list[str], dict[str, int]]:
    summary = summarize(read_outputs(bench.bootstrap, topics, timeout_s=600))
    return differences(summary, bench.oracle), summary.records


def measure_system(
    bench: Bench,
    system: str,
    processes: Sequence[str],
    work: Callable[[PropertyTopics], tuple[float | None, float | None, str]],
) -> Measurement:
    """Runs ``work`` (returns first/last input consumed times when it knows them, and a note)
    under a ``ProcessMeter``, then times and verifies the outputs."""
    topics = system_topics(system, bench.tag, bench.inputs)
    outputs = [getattr(topics, f) for f in OUTPUT_FIELDS.values()]
    create_topics(bench.bootstrap, outputs, append_time=True)
    roots = {"python": os.getpid(), **{p: bench.pids[p] for p in processes}}
    started = time.time()
    with ProcessMeter(roots) as meter:
        first_in, last_in, note = work(topics)
    times = append_times(bench.bootstrap, outputs)
    first_out, last_out = (t / 1000 for t in times) if times else (None, None)
    diffs, counts = _verify(bench, topics)
    cpu = meter.cpu_by_process()
    cpu_s = sum(cpu.values())
    if first_in is not None and last_in is not None:
        startup, span, basis = first_in - started, last_in - first_in, "input consumed"
    else:
        startup = (first_out - started) if first_out else float("nan")
        span = (last_out - first_out) if first_out and last_out else None
        basis = "output appended"
    total = (last_out - started) if last_out else float("nan")
    return Measurement(
        system=system,
        records=bench.records,
        startup_s=round(startup, 2),
        sustained_eps=rate(bench.records, span),
        sustained_basis=basis,
        total_s=round(total, 2),
        end_to_end_eps=rate(bench.records, total),
        cpu_s=round(cpu_s, 1),
        cpu_s_per_million=round(cpu_s * 1e6 / bench.records, 1),
        peak_rss_mb=round(meter.peak_rss / 2**20),
        correct=not diffs,
        differences=diffs,
        outputs=counts,
        cpu_by_process=cpu,
        note=note,
    )


def measure_raw(bench: Bench) -> Measurement:
    from bench import raw_loop

    def work(topics: PropertyTopics) -> tuple[float | None, float | None, str]:
        stats = raw_loop.run(
            bench.bootstrap,
            {"events": topics.events, "views": topics.views},
            {name: getattr(topics, f) for name, f in OUTPUT_FIELDS.items()},
            bench.stop_offsets,
            timeout_s=RUN_TIMEOUT_S,
        )
        if stats.consumed != bench.records:
            raise RuntimeError(f"raw loop consumed {stats.consumed} of {bench.records} records")
        return stats.first_consumed_s, stats.last_consumed_s, "full topology, one thread"

    return measure_system(bench, "raw", ["kafka"], work)


def measure_beam(bench: Bench, system: str) -> Measurement:
    from apache_beam.runners.runner import PipelineState

    from pipelines import property as property_pipeline

    processes = ["kafka", "java-workers", "expansion-service"]
    if RUNNERS[system] == "FlinkRunner":
        processes.append("flink-job-server")
    if system == "flink_cluster":
        processes += [f"flink-cluster-{role}" for role in FLINK_CLUSTER_ROLES]
    if bench.market_flags:
        processes += [MARKETDATA, REDIS]
    if system in POOL_SYSTEMS:
        processes.append("python-workers")  # the pool and its worker processes

    def work(topics: PropertyTopics) -> tuple[float | None, float | None, str]:
        argv = [
            f"--runner={RUNNERS[system]}",
            f"--stop_read_time_ms={bench.stop_ms}",
            *topic_flags(topics),
            *flink_master_flags(system, bench.flink_rest),
            *bench.market_flags,
            *python_pool_flags(system, bench.python_pool),
            *split_flags(system),
        ]
        result = property_pipeline.start(argv)
        state = result.wait_until_finish(duration=RUN_TIMEOUT_S * 1000)
        if state != PipelineState.DONE:
            result.cancel()
            raise RuntimeError(f"{system}: the pipeline ended {state}")
        return None, None, "bounded backfill"

    return measure_system(bench, system, processes, work)


def measure_quix(bench: Bench, python: Path) -> Measurement:
    import subprocess

    def work(topics: PropertyTopics) -> tuple[float | None, float | None, str]:
        arguments = {
            "bootstrap": bench.bootstrap,
            "inputs": {"events": topics.events, "views": topics.views},
            "outputs": {name: getattr(topics, f) for name, f in OUTPUT_FIELDS.items()},
            "idle_s": QUIX_IDLE_S,
            "stop_offsets": [[t, p, end] for (t, p), end in bench.stop_offsets.items()],
        }
        done = subprocess.run(
            [str(python), "-m", "bench.quix_topology", json.dumps(arguments)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise RuntimeError(f"quix exited {done.returncode}: {done.stderr[-3000:]}")
        stats = json.loads(done.stdout.strip().splitlines()[-1])
        if stats["consumed"] != bench.records:
            raise RuntimeError(f"quix consumed {stats['consumed']} of {bench.records} records")
        note = f"stops after {QUIX_IDLE_S} s without input (not counted)"
        return stats["first_consumed_s"], stats["last_consumed_s"], note

    return measure_system(bench, "quix", ["kafka"], work)


# ---- the run ------------------------------------------------------------------------------------


def run(
    records: int,
    systems: Sequence[str],
    home: Path,
    keep_stack: bool,
    seed: int,
    market_data: str = "off",
) -> list[Measurement]:
    from runners import local

    quix_python = ensure_quix_venv() if "quix" in systems else None
    if "kstreams" in systems:
        from bench import kstreams_peer

        kstreams_peer.build()  # before any metering (cached by source hash)
    extras = (REDIS, MARKETDATA) if market_data != "off" else ()
    stack, pids = start_stack(home, systems, beam_extras=extras)
    try:
        bootstrap = stack.bootstrap_servers
        tag = time.strftime("%H%M%S") + uuid.uuid4().hex[:4]
        inputs = (f"bench-{tag}-events", f"bench-{tag}-views")
        create_topics(bootstrap, inputs)
        now_ms = int(time.time() * 1000)
        spec = scaled_spec(
            records,
            seed=seed,
            end_ms=now_ms // HOUR_MS * HOUR_MS,
            keys="mixed" if market_data == "off" else market_data,
        )
        t = time.monotonic()
        sim = generate(spec, now_ms=now_ms)
        print(f"simulated {len(sim.records)} records in {time.monotonic() - t:.0f} s", flush=True)
        t = time.monotonic()
        produce(sim.records, bootstrap, topics={EVENTS_TOPIC: inputs[0], VIEWS_TOPIC: inputs[1]})
        print(f"produced in {time.monotonic() - t:.0f} s", flush=True)
        # The Beam systems run their Python SDK worker in this process (LOOPBACK), where the
        # simulation and its oracle stay for the checks: millions of objects that each of the
        # worker's full garbage collections would rescan (~0.9 s each, 6 in a 500k Prism run:
        # 15 % of the worker's CPU), a cost no deployed worker has. Frozen, the collector skips
        # them (docs/performance.md, change 12).
        gc.collect()
        gc.freeze()
        bench = Bench(
            bootstrap=bootstrap,
            tag=tag,
            inputs=inputs,
            records=len(sim.records),
            stop_ms=0,
            stop_offsets=end_offsets(bootstrap, inputs),
            oracle=sim.oracle,
            pids=pids,
            flink_rest=(
                stack.flink_rest_url.removeprefix("http://") if "flink_cluster" in systems else None
            ),
            market_flags=(
                (f"--marketdata_url={stack.marketdata_url}", f"--redis_url={stack.redis_url}")
                if extras
                else ()
            ),
            python_pool=stack.python_worker_pool if "flink_pool" in systems else None,
        )
        bench = dataclasses.replace(bench, stop_ms=mark_end(bootstrap, inputs))
        results = []
        for system in systems:
            print(f"--- {system} ---", flush=True)
            if system == "raw":
                m = measure_raw(bench)
            elif system == "quix":
                m = measure_quix(bench, quix_python)
            elif system == "kstreams":
                from bench import kstreams_bench

                m = kstreams_bench.measure_compare(bench)
            else:
                m = measure_beam(bench, system)
            results.append(m)
            print(
                f"{m.system}: {m.sustained_eps:.0f} events/s sustained ({m.sustained_basis}), "
                f"start-up {m.startup_s} s, total {m.total_s} s, {m.cpu_s_per_million} CPU-s/M, "
                f"peak RSS {m.peak_rss_mb} MB, correct={m.correct} {m.differences}",
                flush=True,
            )
        return results
    finally:
        gc.unfreeze()  # a caller that goes on (a test) collects the simulation as before
        if not keep_stack:
            local.down(home=home, say=print)


def main(argv: Sequence[str] | None = None) -> int:
    from bench import report

    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="input records")
    parser.add_argument("--small", action="store_true", help=f"{SMALL_EVENTS} input records")
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated, in order, from {[*SYSTEMS, *OPTIONAL_SYSTEMS]} "
        "(flink_cluster: Flink on a session cluster the bench starts; flink_pool: embedded Flink "
        "with 2 Python worker processes; prism_split / flink_split: --split_python_workers, "
        "the views half in a Python worker process of its own)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="the bench stack's home")
    parser.add_argument("--keep_stack", action="store_true", help="leave the bench stack up")
    parser.add_argument(
        "--market_data",
        choices=MARKET_DATA_MODES,
        default="off",
        help="off: no market-data service (FALLBACK); known / unknown: the Beam pipelines enrich "
        "over HTTP with the Redis cache, on an input whose zip codes the market data all knows / "
        "never knows",
    )
    kafka_config.add_refusal(parser)
    args = parser.parse_args(argv)
    kafka_config.refuse(parser, args, kafka_config.PRIVATE_STACK)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not systems or set(systems) - {*SYSTEMS, *OPTIONAL_SYSTEMS}:
        parser.error(f"--systems from {[*SYSTEMS, *OPTIONAL_SYSTEMS]}, got {systems}")
    records = SMALL_EVENTS if args.small else args.events
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    results = run(records, systems, args.home, args.keep_stack, args.seed, args.market_data)
    rows = [dataclasses.asdict(m) for m in results]
    print(report.table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "compare.json"
    text = json.dumps(
        {"records": records, "systems": systems, "market_data": args.market_data, "results": rows},
        indent=2,
    )
    out.write_text(text + "\n")
    # A dated copy too: compare.json is the latest run, the copies are the history.
    (RESULTS / f"compare-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(text + "\n")
    page = report.write(rows, RESULTS / "compare.html", RESULTS / "compare.png")
    print(f"results: {out}\nreport: {page}")
    return 0 if all(m.correct for m in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
