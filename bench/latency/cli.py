"""``python -m bench.latency``: the command line and the run over the systems (its help is the
package's docstring)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

import bench.latency
from bench import kafka_config
from bench.latency.config import DEFAULT_HOME, DEFAULT_LOAD, DEFAULT_MAX_RECORDS, SPEEDUP
from bench.latency.measure import measure
from bench.latency.plan import max_rates, parse_rates, records_for
from bench.stack import ensure_quix_venv
from bench.stack import start_stack as compare_stack
from bench.workload import (
    DEFAULT_EVENTS,
    RESULTS,
    SMALL_EVENTS,
    SYSTEMS,
)
from tools.simulate import SimulationSpec

#: The package's docstring is the command's help.
DOC = bench.latency.__doc__ or ""


def start_stack(home: Path, systems: Sequence[str]):
    """``bench.compare``'s private stack plus the market-data service and Redis."""
    from runners import local

    return compare_stack(home, systems, beam_extras=(local.REDIS, local.MARKETDATA))


def main(argv: Sequence[str] | None = None) -> int:
    from bench import report
    from runners import local

    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description=DOC.split("\n\n")[0],
        epilog=DOC.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--events",
        type=int,
        default=DEFAULT_EVENTS,
        help="size of the bench.compare run whose events/s are the maxima",
    )
    parser.add_argument("--small", action="store_true", help=f"--events {SMALL_EVENTS}")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, in order")
    parser.add_argument(
        "--rate", help="max events/s per system, e.g. flink=130,prism=2000 (overrides compare)"
    )
    parser.add_argument("--load", type=float, default=DEFAULT_LOAD, help="fraction of the max")
    parser.add_argument(
        "--max_records",
        type=int,
        default=DEFAULT_MAX_RECORDS,
        help="cap on one system's live log (a faster system then runs below --load)",
    )
    # Written --flink_args='--a=1 --b=2': argparse takes a lone "--a=1" after a space for a flag.
    parser.add_argument("--prism_args", default="", help="extra pipeline flags on Prism")
    parser.add_argument(
        "--flink_args",
        default="",
        help="extra pipeline flags on Flink, e.g. --flink_args='--max_bundle_time_mills=100'",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="the bench stack's home")
    parser.add_argument("--keep_stack", action="store_true", help="leave the bench stack up")
    parser.add_argument("--label", default="", help="results in latency[-LABEL].json/.html")
    kafka_config.add_refusal(parser)
    args = parser.parse_args(argv)
    kafka_config.refuse(parser, args, kafka_config.PRIVATE_STACK)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not systems or set(systems) - set(SYSTEMS):
        parser.error(f"--systems from {list(SYSTEMS)}, got {systems}")
    if not 0 < args.load <= 1:
        parser.error(f"--load must be in (0, 1], got {args.load}")
    events = SMALL_EVENTS if args.small else args.events
    try:
        rates = {**max_rates(RESULTS, events), **parse_rates(args.rate)}
    except ValueError as exc:
        parser.error(str(exc))
    missing = [s for s in systems if s not in rates]
    if missing:
        # A throughput run that failed (or never ran) for a system leaves no max to take 50 % of.
        print(
            f"skipping {missing}: no max events/s (no correct `python -m bench.compare --events "
            f"{events}` result for them; give --rate system=events_per_s)",
            flush=True,
        )
        systems = [s for s in systems if s in rates]
        if not systems:
            return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    extra = {"prism": shlex.split(args.prism_args), "flink": shlex.split(args.flink_args)}
    quix_python = ensure_quix_venv() if "quix" in systems else None
    if "kstreams" in systems:
        from bench import kstreams_peer

        kstreams_peer.build()
    span_s = SimulationSpec().span_h * 3600 / SPEEDUP
    stack, pids = start_stack(args.home, systems)
    runs = []
    try:
        for system in systems:
            n = records_for(rates[system] * args.load, span_s, args.max_records)
            print(f"--- {system} ---", flush=True)
            run = measure(
                system,
                n,
                rates[system] * args.load,
                rates[system],
                stack,
                pids,
                args.seed,
                extra.get(system, []),
                quix_python,
            )
            runs.append(run)
            print(report.latency_table([dataclasses.asdict(run)]), flush=True)
    finally:
        if not args.keep_stack:
            local.down(home=args.home, say=print)
    rows = [dataclasses.asdict(r) for r in runs]
    print(report.latency_table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"latency-{args.label}" if args.label else "latency"
    text = json.dumps(
        {"events": events, "load": args.load, "systems": systems, "results": rows}, indent=1
    )
    out = RESULTS / f"{name}.json"
    out.write_text(text + "\n")
    (RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(text + "\n")
    page = report.write_latency(rows, RESULTS / f"{name}.html", RESULTS / f"{name}.png")
    print(f"results: {out}\nreport: {page}")
    return 0 if all(r.correct for r in runs) and not missing else 1
