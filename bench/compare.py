"""Side by side: the property pipeline on Prism and on Flink vs a raw confluent-kafka loop.

    python -m bench.compare [--events 500000 | --small] [--systems raw,quix,prism,flink]

One run, one broker, one simulated input (``tools.simulate``, fixed seed):

1. Starts a private local stack under ``.local/bench-stack`` (Kafka, Beam's Java workers and
   expansion service, the Flink job server when Flink is measured) so that no other user of the
   shared stack disturbs the measurement, and stops it at the end (``--keep_stack`` keeps it).
   No market-data service runs: every system enriches LISTING_UPDATED events as FALLBACK.
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
     server's own default stays the embedded Flink, so both can run in one bench).

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
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.options import PropertyTopics
from pipelines.property import OUTPUT_SPECS
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate import (
    HOUR_MS,
    SimulationSpec,
    generate,
    produce,
)
from tools.verify import differences, read_outputs, summarize

LOG = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_HOME = REPO_ROOT / ".local" / "bench-stack"
SYSTEMS = ("raw", "quix", "kstreams", "prism", "flink")
# Measured only when named in --systems (they start more JVMs).
OPTIONAL_SYSTEMS = ("flink_cluster",)
QUIX_VENV = REPO_ROOT / ".local" / "quix-venv"
QUIX_VERSION = "3.28.1"
RUNNERS = {"prism": "PrismRunner", "flink": "FlinkRunner", "flink_cluster": "FlinkRunner"}
# The session cluster's processes, metered under these names (runners.local's roles).
FLINK_CLUSTER_ROLES = ("jobmanager", "taskmanager")
PARTITIONS = 4
DEFAULT_EVENTS = 500_000
SMALL_EVENTS = 20_000
RUN_TIMEOUT_S = 3600
SAMPLE_EVERY_S = 0.5
QUIX_IDLE_S = 5.0
# Output name -> PropertyTopics field (the pipeline's output table).
OUTPUT_FIELDS = {name: spec.topic_field for name, spec in OUTPUT_SPECS.items()}


# ---- plain helpers ------------------------------------------------------------------------------


def scaled_spec(records: int, seed: int = 7, end_ms: int | None = None) -> SimulationSpec:
    """A simulation of about ``records`` input records, with the demo's proportions.

    One property event for four views; users and properties grow with the volume so that an
    ordinary user stays far below the fraud threshold (~3 views per 10-minute window, as in the
    default spec) and only the bots alert.
    """
    if records < 1_000:
        raise ValueError(f"--events must be at least 1000, got {records}")
    events = records // 5
    views = records - events
    return SimulationSpec(
        seed=seed,
        events=events,
        views=views,
        # Capped: the simulator draws each view's listing with random.choices over weights,
        # O(properties) per view (10 000 properties made 500 000 records take many minutes).
        properties=min(1_000, max(400, events // 10)),
        users=max(300, views * 300 // 16_000),
        end_ms=end_ms,
    )


def system_topics(system: str, tag: str, inputs: tuple[str, str]) -> PropertyTopics:
    """Fresh output topics for one system of one run (inputs shared by every system)."""
    prefix = f"bench-{tag}-{system}"
    return PropertyTopics(
        events=inputs[0],
        views=inputs[1],
        **{f: f"{prefix}-{f.replace('_', '-')}" for f in OUTPUT_FIELDS.values()},
    )


def topic_flags(topics: PropertyTopics) -> list[str]:
    """``pipelines.property`` flags naming every topic of ``topics``."""
    return [f"--{f}_topic={getattr(topics, f)}" for f in PropertyTopics.__dataclass_fields__]


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


# ---- process metering ---------------------------------------------------------------------------


class ProcessMeter:
    """CPU seconds and peak summed RSS of some process trees, sampled in a thread.

    ``roots`` gives ``name -> pid``; each root counts with all its descendants (found again at
    every sample, so a child started during the run, like Prism, is included). CPU of a process
    that ends between two samples is counted up to its last sample.
    """

    def __init__(self, roots: dict[str, int], every_s: float = SAMPLE_EVERY_S) -> None:
        import psutil

        self._psutil = psutil
        self._roots = roots
        self._every_s = every_s
        self._first: dict[tuple[int, float], float] = {}
        self._last: dict[tuple[int, float], tuple[str, float]] = {}
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-meter", daemon=True)

    def _sample(self, baseline: bool = False) -> None:
        psutil = self._psutil
        rss = 0
        for name, pid in self._roots.items():
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in procs:
                try:
                    with proc.oneshot():
                        ident = (proc.pid, proc.create_time())
                        cpu = proc.cpu_times()
                        used = cpu.user + cpu.system
                        rss += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                if baseline:
                    self._first[ident] = used
                self._last[ident] = (name if proc.pid == pid else f"{name}/{proc.name()}", used)
        self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._sample()

    def __enter__(self) -> ProcessMeter:
        self._sample(baseline=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample()

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds used since ``__enter__``, by process name."""
        out: dict[str, float] = {}
        for ident, (name, used) in self._last.items():
            out[name] = out.get(name, 0.0) + used - self._first.get(ident, 0.0)
        return {k: round(v, 2) for k, v in sorted(out.items())}


# ---- Kafka helpers ------------------------------------------------------------------------------


def create_topics(bootstrap: str, names: Iterable[str], append_time: bool = False) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    config = {"message.timestamp.type": "LogAppendTime"} if append_time else {}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=PARTITIONS, config=config) for n in names]
    )
    for future in futures.values():
        future.result(timeout=60)


def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of ``topics``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        out = {}
        for topic in topics:
            for p in range(PARTITIONS):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                out[(topic, p)] = high
        return out
    finally:
        consumer.close()


def mark_end(bootstrap: str, topics: Iterable[str]) -> int:
    """One record stamped "now" in every partition of ``topics``; returns that stop time (a
    bounded Beam read with ``--stop_read_time_ms`` stops before it)."""
    from confluent_kafka import Producer

    stop_ms = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": bootstrap})
    for topic in topics:
        for p in range(PARTITIONS):
            producer.produce(topic, key=b"end", value=b"end", partition=p, timestamp=stop_ms)
    if producer.flush(30):
        raise RuntimeError("could not write the end-of-backfill markers")
    return stop_ms


def append_times(bootstrap: str, topics: Iterable[str], timeout_s: float = 120.0) -> list[int]:
    """First and last broker append time (ms) over every record of ``topics``; [] when empty."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    deadline = time.monotonic() + timeout_s
    first, last = None, None
    try:
        ends = {}
        for topic in topics:
            for p in range(PARTITIONS):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                if high > 0:
                    ends[(topic, p)] = high
        consumer.assign([TopicPartition(t, p, 0) for t, p in ends])
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading append times: {len(ends)} partitions left")
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error():
                    raise RuntimeError(f"reading append times: {msg.error()}")
                ts = msg.timestamp()[1]
                first = ts if first is None else min(first, ts)
                last = ts if last is None else max(last, ts)
                where = (msg.topic(), msg.partition())
                if where in ends and msg.offset() + 1 >= ends[where]:
                    del ends[where]
    finally:
        consumer.close()
    return [] if first is None else [first, last]


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


def _verify(bench: Bench, topics: PropertyTopics) -> tuple[list[str], dict[str, int]]:
    summary = summarize(read_outputs(bench.bootstrap, topics, timeout_s=600))
    return differences(summary, bench.oracle), summary.records


def _measure(
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

    return _measure(bench, "raw", ["kafka"], work)


def measure_beam(bench: Bench, system: str) -> Measurement:
    from apache_beam.runners.runner import PipelineState

    from pipelines import property as property_pipeline

    processes = ["kafka", "java-workers", "expansion-service"]
    if RUNNERS[system] == "FlinkRunner":
        processes.append("flink-job-server")
    if system == "flink_cluster":
        processes += [f"flink-cluster-{role}" for role in FLINK_CLUSTER_ROLES]

    def work(topics: PropertyTopics) -> tuple[float | None, float | None, str]:
        argv = [
            f"--runner={RUNNERS[system]}",
            f"--stop_read_time_ms={bench.stop_ms}",
            *topic_flags(topics),
            *flink_master_flags(system, bench.flink_rest),
        ]
        result = property_pipeline.start(argv)
        state = result.wait_until_finish(duration=RUN_TIMEOUT_S * 1000)
        if state != PipelineState.DONE:
            result.cancel()
            raise RuntimeError(f"{system}: the pipeline ended {state}")
        return None, None, "bounded backfill"

    return _measure(bench, system, processes, work)


def flink_master_flags(system: str, flink_rest: str | None) -> list[str]:
    """Where a Flink system's job runs: the job server's embedded Flink (``[local]``) for
    ``flink``, the session cluster's REST address for ``flink_cluster``. Explicit for both: the
    job server applies its own ``--flink-master`` only to a pipeline that says ``[auto]``."""
    if system == "flink":
        return ["--flink_master=[local]"]
    if system == "flink_cluster":
        if not flink_rest:
            raise ValueError("flink_cluster needs the session cluster's REST address")
        return [f"--flink_master={flink_rest}"]
    return []


def ensure_quix_venv(venv: Path = QUIX_VENV) -> Path:
    """The Python of a venv with quixstreams (see ``bench.quix_topology`` for why a separate one),
    created on first use; the project and its venv's packages are reachable after Quix's own."""
    import subprocess
    import sysconfig

    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('quixstreams'))"]
    found = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    if found.stdout.strip() != QUIX_VERSION:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"quixstreams=={QUIX_VERSION}"],
            check=True,
            timeout=900,
        )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
    )
    # A .pth appends to sys.path after the venv's own packages: Quix keeps its confluent-kafka.
    (site / "zz_property_streams.pth").write_text(
        f"{REPO_ROOT}\n{sysconfig.get_paths()['purelib']}\n"
    )
    return python


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

    return _measure(bench, "quix", ["kafka"], work)


# ---- the run ------------------------------------------------------------------------------------


def start_stack(home: Path, systems: Sequence[str], beam_extras: Sequence[str] = ()):
    """The bench's private stack (``runners.local`` with its own home) and the pids to meter;
    ``beam_extras`` are further services the Beam pipelines use (``bench.latency``: market data
    and Redis)."""
    from runners import local

    # The runner presets find the stack through this variable (runners.local.StackPaths).
    os.environ[local.HOME_ENV] = str(home)
    services = [local.KAFKA]
    if any(s in RUNNERS for s in systems):
        services += [local.JAVA_WORKERS, local.EXPANSION_SERVICE, *beam_extras]
    if any(RUNNERS.get(s) == "FlinkRunner" for s in systems):
        services.append(local.FLINK_JOB_SERVER)
    if "flink_cluster" in systems:
        services.append(local.FLINK_CLUSTER)
    # Any free port, never the defaults: a shared stack (re)starting at the same moment would
    # take them too, and one of the two services then dies (seen: the expansion service).
    stack = local.ensure_up(
        services,
        home=home,
        port_overrides=dict.fromkeys(services, 0),
        create_topics=False,
        say=print,
    )
    pids = {name: stack.record(name).pid for name in services}
    if local.FLINK_CLUSTER in services:
        # Two JVMs, not parent and child: meter each.
        del pids[local.FLINK_CLUSTER]
        for proc in stack.record(local.FLINK_CLUSTER).processes:
            pids[f"{local.FLINK_CLUSTER}-{proc.role}"] = proc.pid
    return stack, pids


def run(
    records: int, systems: Sequence[str], home: Path, keep_stack: bool, seed: int
) -> list[Measurement]:
    from runners import local

    quix_python = ensure_quix_venv() if "quix" in systems else None
    if "kstreams" in systems:
        from bench import kstreams_peer

        kstreams_peer.build()  # before any metering (cached by source hash)
    stack, pids = start_stack(home, systems)
    try:
        bootstrap = stack.bootstrap_servers
        tag = time.strftime("%H%M%S") + uuid.uuid4().hex[:4]
        inputs = (f"bench-{tag}-events", f"bench-{tag}-views")
        create_topics(bootstrap, inputs)
        now_ms = int(time.time() * 1000)
        spec = scaled_spec(records, seed=seed, end_ms=now_ms // HOUR_MS * HOUR_MS)
        t = time.monotonic()
        sim = generate(spec, now_ms=now_ms)
        print(f"simulated {len(sim.records)} records in {time.monotonic() - t:.0f} s", flush=True)
        t = time.monotonic()
        produce(sim.records, bootstrap, topics={EVENTS_TOPIC: inputs[0], VIEWS_TOPIC: inputs[1]})
        print(f"produced in {time.monotonic() - t:.0f} s", flush=True)
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
        "(flink_cluster: Flink on a session cluster the bench starts)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="the bench stack's home")
    parser.add_argument("--keep_stack", action="store_true", help="leave the bench stack up")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not systems or set(systems) - {*SYSTEMS, *OPTIONAL_SYSTEMS}:
        parser.error(f"--systems from {[*SYSTEMS, *OPTIONAL_SYSTEMS]}, got {systems}")
    records = SMALL_EVENTS if args.small else args.events
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    results = run(records, systems, args.home, args.keep_stack, args.seed)
    rows = [dataclasses.asdict(m) for m in results]
    print(report.table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "compare.json"
    text = json.dumps({"records": records, "systems": systems, "results": rows}, indent=2)
    out.write_text(text + "\n")
    # A dated copy too: compare.json is the latest run, the copies are the history.
    (RESULTS / f"compare-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(text + "\n")
    page = report.write(rows, RESULTS / "compare.html", RESULTS / "compare.png")
    print(f"results: {out}\nreport: {page}")
    return 0 if all(m.correct for m in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
