"""``python -m bench.latency_attribution``: the command line, the runs in turn, the table (its
help is the package's docstring)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
from collections.abc import Sequence
from pathlib import Path

import bench.latency_attribution
from bench import kafka_config
from bench.latency import (
    DEFAULT_HOME,
)
from bench.latency.cli import start_stack
from bench.latency_attribution.inputs import templates
from bench.latency_attribution.run import SEGMENTS, AttributionRun, measure
from bench.workload import RESULTS


def table(runs: Sequence[AttributionRun]) -> str:
    """One block per runner: a row per (variant, run, segment) with count and p50/p90/p99/max."""
    lines = []
    for runner in dict.fromkeys(r.runner for r in runs):
        lines.append(f"== {runner} ==")
        lines.append(
            f"{'variant':<22} {'segment':<17} {'count':>6} {'p50':>8} {'p90':>8} {'p99':>8} "
            f"{'max':>8}  exact"
        )
        for r in (r for r in runs if r.runner == runner):
            for name in SEGMENTS:
                s = r.segments.get(name, {"count": 0})
                cells = [f"{s.get(k, float('nan')):>8.0f}" for k in ("p50", "p90", "p99", "max")]
                lines.append(
                    f"{r.variant:<22} {name:<17} {s['count']:>6} {' '.join(cells)}  "
                    f"{'yes' if r.exact else 'NO: ' + '; '.join(r.problems)}"
                )
            lines.append("")
    return "\n".join(lines)


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME=FLAGS`` (flags shell-split) or ``NAME`` alone (no extra flags)."""
    name, _, flags = text.partition("=")
    if not name.strip():
        raise ValueError(f"--variant takes NAME[='--flag=v ...'], got {text!r}")
    return name.strip(), shlex.split(flags)


def main(argv: Sequence[str] | None = None) -> int:
    from runners import local

    parser = argparse.ArgumentParser(
        prog="python -m bench.latency_attribution",
        description=(bench.latency_attribution.__doc__ or "").split("\n\n")[0],
        epilog=(bench.latency_attribution.__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runners", default="flink,prism", help="comma-separated: flink, prism")
    parser.add_argument("--rate", type=float, default=150.0, help="live events per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="live input duration")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME='--flag=v ...' extra pipeline flags (repeatable; default: one, 'preset')",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant, alternated")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="the bench stack's home")
    parser.add_argument("--keep_stack", action="store_true", help="leave the bench stack up")
    parser.add_argument("--label", default="", help="results in latency-attribution[-LABEL].json")
    kafka_config.add_refusal(parser)
    args = parser.parse_args(argv)
    kafka_config.refuse(parser, args, kafka_config.PRIVATE_STACK)
    runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    if not runners or set(runners) - {"flink", "prism"}:
        parser.error(f"--runners from flink, prism; got {runners}")
    if args.rate <= 0 or args.seconds <= 0 or args.repeat < 1:
        parser.error("--rate and --seconds must be > 0, --repeat >= 1")
    try:
        variants = [parse_variant(v) for v in args.variant] or [("preset", [])]
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    payloads = templates(threshold=500_000)
    stack, pids = start_stack(args.home, runners)
    runs: list[AttributionRun] = []
    try:
        for runner in runners:
            for _ in range(args.repeat):
                for name, flags in variants:
                    run = measure(
                        runner, name, flags, stack, pids, payloads, args.rate, args.seconds
                    )
                    runs.append(run)
                    print(table([run]), flush=True)
                    print(f"  CPU s per 1000 events: {run.cpu_s_per_1k}", flush=True)
                    if run.effective:
                        print(f"  effective: {run.effective}", flush=True)
    finally:
        if not args.keep_stack:
            local.down(home=args.home, say=print)
    print(table(runs))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"latency-attribution-{args.label}" if args.label else "latency-attribution"
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps([dataclasses.asdict(r) for r in runs], indent=1) + "\n")
    print(f"results: {out}")
    return 0 if all(r.exact for r in runs) else 1
