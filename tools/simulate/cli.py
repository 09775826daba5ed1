"""``python -m tools.simulate``: plan a simulation, write its oracle, produce it to Kafka."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence

import tools.simulate
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate.generate import generate
from tools.simulate.produce import produce
from tools.simulate.spec import SimulationSpec

LOG = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.simulate", description=(tools.simulate.__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--bootstrap_servers",
        default=None,
        help="Kafka bootstrap servers (default: the local stack's broker)",
    )
    parser.add_argument("--events_topic", default=EVENTS_TOPIC)
    parser.add_argument("--views_topic", default=VIEWS_TOPIC)
    parser.add_argument(
        "--oracle",
        default=".local/simulation/oracle.json",
        help="where to write the expected results",
    )
    parser.add_argument(
        "--rate_per_s", type=float, default=0.0, help="records per second (0 = as fast as possible)"
    )
    parser.add_argument(
        "--dry_run", action="store_true", help="plan and write the oracle, produce nothing"
    )
    for f in dataclasses.fields(SimulationSpec):
        if f.name == "end_ms":
            continue
        parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    parser.add_argument(
        "--end_ms",
        type=int,
        default=None,
        help="event time of the end of the simulated span (default: now)",
    )
    parser.add_argument(
        "--now_ms",
        type=int,
        default=None,
        help="the clock the plan is made at (default: now); with --end_ms and --seed, replays "
        "a logged plan exactly",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    spec = SimulationSpec(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(SimulationSpec)}
    )
    sim = generate(spec, now_ms=args.now_ms)
    LOG.info("same plan again: %s", sim.replay)
    import pathlib

    path = pathlib.Path(args.oracle)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sim.oracle.to_json())
    o = sim.oracle
    LOG.info(
        "planned %d records (%s); oracle: %d zips, %d hourly windows, %d alerts, "
        "%d dead letters, %d late -> %s",
        len(sim.records),
        o.records_by_topic,
        len(o.counts_by_zip),
        len(o.hourly_views),
        len(o.alert_ids),
        o.dead_letters,
        o.late,
        path,
    )
    if args.dry_run:
        return 0
    bootstrap = args.bootstrap_servers
    if bootstrap is None:
        from runners.local import Stack

        bootstrap = Stack.load().bootstrap_servers
    from pipelines.kafka_access import KafkaAccessError, check_access
    from tools.client_security import tool_client_config

    try:
        security = tool_client_config("producer", args.bootstrap_servers)
        if security:
            # Fail in seconds with one line (librdkafka retries a refused login without end).
            check_access(
                bootstrap,
                security,
                read_topics=[],
                write_topics=[args.events_topic, args.views_topic],
                user="the simulator's Kafka user",
            )
    except (KafkaAccessError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    n = produce(
        sim.records,
        bootstrap,
        topics={EVENTS_TOPIC: args.events_topic, VIEWS_TOPIC: args.views_topic},
        rate_per_s=args.rate_per_s,
        producer_config=security,
    )
    LOG.info("delivered %d records to %s", n, bootstrap)
    return 0
