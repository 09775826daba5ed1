"""The demo behind ``make run``: local stack, simulator, the property pipeline, outputs shown.

    python -m tools.demo [--runner=PrismRunner|FlinkRunner] [--streaming | --live]
        [--split_python_workers]
                             [--events N --views N ...]

1. Brings the local stack up (Kafka, Beam's expansion service and Java workers, Redis, the
   market-data service; the Flink job server too for ``--runner=FlinkRunner``) and resets the
   pipeline's topics, so that what comes out can be compared with the simulator's oracle.
2. Writes the simulated log (events, views, bots, out-of-order, too-late and poison records) to
   ``property-events`` and ``property-views``.
3. Replays it through ``pipelines.property`` (by default a bounded backfill up to the moment the
   simulator finished; ``--streaming``: an unbounded read from the earliest offset) and prints a
   live summary per output topic every few seconds, with a check mark where the output already
   equals the oracle.
4. Stops when every output matches (or at ``--timeout_s``), cancels a streaming job (a Flink job
   through Flink's REST API: Beam's ``cancel()`` leaves it running), and writes an HTML report to
   ``.local/demo/report.html``. Exit status 0 only when everything matched.

``--live`` runs it as a live system instead: the streaming job starts first, then the simulator
writes the log in real time, each record at its own CreateTime, with time compressed
``--speedup`` times (60: the 1 h windows last 60 s, the 10 min lateness and fraud window 10 s,
three hours of events 3 minutes); the pipeline gets the compressed windows and the oracle is
computed for them. The last window closes once the wall clock passes it (an idle partition's
watermark follows the reader's clock). On a slow machine lower ``--events``/``--views`` or the
speedup (Flink streaming's sustained rate: docs/performance.md).

With ``--streaming`` the simulated span ends at the last full hour, so every hourly window is
closed by the time the read has caught up: the Kafka read's CreateTime watermark moves to "now" on
a partition with no backlog, and the windows fire.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from apache_beam.runners.runner import PipelineState

from pipelines import property as property_pipeline
from pipelines.options import PropertyTopics
from tools.simulate import (
    HOUR_MS,
    SimulationSpec,
    compress_time,
    generate,
    produce,
    scaled_spec,
)
from tools.verify import Summary, differences, read_outputs, summarize

LOG = logging.getLogger(__name__)
REPORT = Path(".local/demo/report.html")


TERMINAL = (PipelineState.DONE, PipelineState.FAILED, PipelineState.CANCELLED)


def summary_lines(summary: Summary, diffs: Sequence[str], elapsed_s: float) -> list[str]:
    """The live summary: one line per output topic, a check mark where it matches the oracle."""
    bad = " ".join(diffs)

    def mark(*words: str) -> str:
        return "…" if any(w in bad for w in words) else "✓"

    status = ", ".join(f"{k} {v}" for k, v in sorted(summary.enrichment_status.items()))
    stages = ", ".join(f"{k} {v}" for k, v in sorted(summary.dead_letters_by_stage.items()))
    r = summary.records
    enriched = mark("enriched", "enrichment")
    return [
        f"--- {elapsed_s:6.1f} s ---------------------------------------------------------",
        f" {enriched} enriched-property-events  {r.get('enriched', 0):7d} records  ({status})",
        f" {mark('high-value')} high-value-properties     {r.get('high_value', 0):7d} records",
        f" {mark('counts_by_zip')} properties-by-zip         {r.get('counts_by_zip', 0):7d} updates"
        f"  ({len(summary.counts_by_zip)} zips)",
        f" {mark('hourly_views')} property-views-hourly     {r.get('views_hourly', 0):7d} panes"
        f"    ({len(summary.hourly_views)} property-hours)",
        f" {mark('alert')} alerts                    {r.get('alerts', 0):7d} alerts   "
        f"({', '.join(summary.alert_ids) or 'none yet'})",
        f" {mark('dead letters')} property-events-dlq       {r.get('dead_letters', 0):7d} records"
        f"  ({stages})",
        f" {mark('late')} property-events-late      {r.get('late', 0):7d} records",
    ]


def write_report(
    path: Path,
    spec: SimulationSpec,
    runner: str,
    lines: Sequence[str],
    diffs: Sequence[str],
    timings: dict[str, float],
) -> None:
    """A small HTML page with the final summary, the differences and the timings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    verdict = "all outputs equal the oracle" if not diffs else f"{len(diffs)} outputs differ"
    path.write_text(
        "<!doctype html><meta charset=utf-8><title>property pipeline demo</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}"
        ".ok{color:#070}.bad{color:#a00}</style>"
        f"<h1>Property pipeline demo on {html.escape(runner)}</h1>"
        f"<p class={'ok' if not diffs else 'bad'}><b>{html.escape(verdict)}</b></p>"
        f"<h2>Outputs</h2><pre>{html.escape(chr(10).join(lines))}</pre>"
        + (f"<h2>Differences</h2><pre>{html.escape(chr(10).join(diffs))}</pre>" if diffs else "")
        + f"<h2>Timings (s)</h2><pre>{html.escape(json.dumps(timings, indent=1))}</pre>"
        "<h2>Simulation</h2>"
        f"<pre>{html.escape(json.dumps(dataclasses.asdict(spec), indent=1))}</pre>",
        encoding="utf-8",
    )


def _cancel_in_flink(flink_job) -> None:
    from runners.flink import FlinkRestError

    try:
        print(f"Flink job {flink_job.jid or ''}: {flink_job.cancel(30)}")
    except FlinkRestError as exc:
        print(f"could not cancel the Flink job through its REST API: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runner", default="FlinkRunner", choices=["FlinkRunner", "PrismRunner"])
    parser.add_argument("--timeout_s", type=float, default=600.0, help="give up after this long")
    parser.add_argument("--interval_s", type=float, default=5.0, help="summary refresh period")
    parser.add_argument("--keep_topics", action="store_true", help="do not reset the topics")
    parser.add_argument(
        "--secure",
        action="store_true",
        help="run on the secured local Kafka (SASL_SSL, SCRAM, ACLs: runners.local up --secure);"
        " the pipeline connects as its user 'pipeline', the simulator as 'producer'",
    )
    parser.add_argument(
        "--split_python_workers",
        action="store_true",
        help="run the pipeline's views half in a Python worker process of its own (starts the "
        "stack's python-workers pool; pipelines/worker_groups.py)",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--streaming",
        action="store_true",
        help="read unbounded (a job cancelled at the end) instead of replaying the log as a "
        "bounded backfill up to the moment the simulator finished",
    )
    modes.add_argument(
        "--live",
        action="store_true",
        help="start the streaming job first, then write the log in real time with time "
        "compressed --speedup times (see the module docstring)",
    )
    parser.add_argument(
        "--speedup",
        type=int,
        default=60,
        help="--live: time compression (must divide 3600, 600 and 240 s: 60, 120, 40, ...)",
    )
    for f in dataclasses.fields(SimulationSpec):
        if f.name not in ("end_ms",):
            parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    args = parser.parse_args(argv)
    from pipelines import run_control

    run_control.setup_logging("demo")  # Beam's shutdown noise kept off the console
    logging.getLogger("apache_beam").setLevel(logging.WARNING)

    from runners import kafka, local

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    services = [
        *local.DEFAULT_SERVICES,
        *([local.FLINK_JOB_SERVER] if args.runner == "FlinkRunner" else []),
        *([local.PYTHON_WORKERS] if args.split_python_workers else []),
    ]
    split = ["--split_python_workers"] if args.split_python_workers else []
    stack = local.ensure_up(services, secure=args.secure, say=print)
    timings["stack_up"] = round(time.monotonic() - t0, 1)
    from runners.marketdata.processes import served_dataset

    # The enriched events are checked against the data the service serves, not only counted.
    market = served_dataset(stack.marketdata_url).lookup
    # Security settings of each role ({} on an unsecured stack).
    as_admin, as_producer, as_tools = (
        stack.kafka_client_config(user) for user in ("admin", "producer", "tools")
    )
    specs = kafka.load_topics()
    if not args.keep_topics:
        kafka.ensure_topics(stack.bootstrap_servers, specs, recreate=True, client_config=as_admin)

    now_ms = int(time.time() * 1000)
    spec = SimulationSpec(
        **{
            f.name: getattr(args, f.name)
            for f in dataclasses.fields(SimulationSpec)
            if f.name != "end_ms"
        },
        end_ms=now_ms // HOUR_MS * HOUR_MS,
    )
    topics = PropertyTopics()
    from runners.flink import SubmittedJob

    flink_job = SubmittedJob(stack) if args.runner == "FlinkRunner" else None
    producer: threading.Thread | None = None
    if args.live:
        live = scaled_spec(spec, args.speedup)  # ValueError naming what does not divide
        result = property_pipeline.start(
            [
                f"--runner={args.runner}",
                f"--window_size_s={live.gate_window_s}",
                f"--allowed_lateness_s={live.allowed_lateness_s}",
                f"--fraud_window_s={live.fraud_window_s}",
                *split,
            ]
        )
        t = time.monotonic()
        if flink_job is not None:
            flink_job.find()
        else:
            time.sleep(15)  # Prism has no job API to wait on; its read starts within seconds
        timings["job_start"] = round(time.monotonic() - t, 1)
        # Start at the next fraud-window boundary, so each bot's burst stays in one window.
        step_ms = live.fraud_window_s * 1000
        origin_ms = (int(time.time() * 1000) + 2_000) // step_ms * step_ms + step_ms
        sim = compress_time(generate(spec, now_ms=spec.end_ms), spec, args.speedup, origin_ms)
        producer = threading.Thread(
            target=produce,
            args=(sim.records, stack.bootstrap_servers),
            kwargs={
                "follow_timestamps": True,
                # A record stamped "now" must reach the broker before its partition idles.
                "producer_config": {"linger.ms": "0", **as_producer},
                "progress": False,
            },
            name="live-producer",
            daemon=True,
        )
        producer.start()
        span_s = (max(r.timestamp_ms for r in sim.records) - origin_ms) / 1000
        print(f"producing {len(sim.records)} records live over {span_s:.0f} s")
    else:
        t = time.monotonic()
        sim = generate(spec, now_ms=now_ms)
        produce(sim.records, stack.bootstrap_servers, producer_config=as_producer)
        timings["simulate_and_produce"] = round(time.monotonic() - t, 1)
        # A backfill reads each partition up to its end as the pipeline is built: the whole log.
        mode = ["--streaming"] if args.streaming else ["--backfill"]
        result = property_pipeline.start([f"--runner={args.runner}", *mode, *split])
    print(
        f"the oracle expects {len(sim.oracle.alert_ids)} alerts, "
        f"{sim.oracle.dead_letters} dead letters, {sim.oracle.late} late records"
    )
    started = time.monotonic()
    lines: list[str] = []
    diffs: list[str] = ["nothing read yet"]
    try:
        while time.monotonic() - started < args.timeout_s:
            time.sleep(args.interval_s)
            # Noted before reading: once the job has ended, this summary holds all it wrote.
            finished = result.state in TERMINAL
            summary = summarize(
                read_outputs(
                    stack.bootstrap_servers, topics, timeout_s=60, consumer_config=as_tools
                )
            )
            diffs = differences(summary, sim.oracle, market)
            lines = summary_lines(summary, diffs, time.monotonic() - started)
            print("\n".join(lines), flush=True)
            if not diffs and (producer is None or not producer.is_alive()):
                timings["pipeline_to_all_outputs_match"] = round(time.monotonic() - started, 1)
                break
            if finished:
                break  # a backfill that finished: the outputs above are final
    finally:
        if result.state not in TERMINAL:
            if flink_job is not None:
                _cancel_in_flink(flink_job)
            result.cancel()
        if producer is not None:
            producer.join(timeout=30)
    print(
        "every output equals the oracle" if not diffs else "differences:\n  " + "\n  ".join(diffs)
    )
    write_report(REPORT, spec, args.runner, lines, diffs, timings)
    print(f"report: {REPORT.resolve()}")
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
