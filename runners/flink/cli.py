"""The command line of ``python -m runners.flink`` (see the package docstring)."""

from __future__ import annotations

import argparse
import sys

import runners.flink as package
from runners.cli import FullHelpParser
from runners.flink.rest import FlinkRest, FlinkRestError, embedded_rest_url
from runners.flink.watch import watch


def _default_url() -> str:
    from runners.local import FLINK_CLUSTER, FLINK_JOB_SERVER, Stack

    stack = Stack.load()
    if stack.is_running(FLINK_CLUSTER):
        return stack.flink_rest_url
    if stack.is_running(FLINK_JOB_SERVER):
        return embedded_rest_url(stack.log_path(FLINK_JOB_SERVER))
    stack.check_alive(FLINK_CLUSTER)  # raises, naming how to start it
    raise FlinkRestError("no Flink runs in the local stack: give --url")


def main(argv: list[str] | None = None) -> int:
    parser = FullHelpParser(
        prog="python -m runners.flink",
        description=package.__doc__.split("\n\n")[0],
        epilog=package.__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        help="Flink REST url (default: the local flink-cluster, else the embedded Flink of the "
        "local flink-job-server's latest job)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("jobs", help="list jobs: id, state, duration, name")
    p_sp = sub.add_parser("savepoint", help="take a savepoint; the job keeps running")
    p_sp.add_argument("jid")
    p_sp.add_argument("--dir", help="target directory (default: state.savepoints.dir)")
    p_sp.add_argument(
        "--cancel",
        action="store_true",
        help="cancel the job after the savepoint (records emitted after it are repeated by a "
        "restart from it: prefer `stop`)",
    )
    p_stop = sub.add_parser(
        "stop", help="stop the job with a savepoint (restart with --savepoint_path=<printed path>)"
    )
    p_stop.add_argument("jid")
    p_stop.add_argument("--dir", help="target directory (default: state.savepoints.dir)")
    p_cancel = sub.add_parser("cancel", help="cancel a job, no savepoint")
    p_cancel.add_argument("jid")
    p_watch = sub.add_parser(
        "watch", help="log each job's status transitions and restarts, one line per change"
    )
    p_watch.add_argument("--jid", help="only this job (default: every job)")
    p_watch.add_argument("--interval_s", type=float, default=2.0, help="poll period")
    p_watch.add_argument("--for_s", type=float, default=3600.0, help="stop after this long")
    for p in (p_sp, p_stop, p_cancel):
        p.add_argument("--wait_s", type=float, default=300.0, help="give up after this long")
    args = parser.parse_args(argv)
    try:
        client = FlinkRest(args.url or _default_url())
        if args.command == "jobs":
            for job in client.jobs():
                print(f"{job.jid}  {job.state:<10} {job.duration_ms / 1000:8.1f}s  {job.name}")
        elif args.command == "cancel":
            print(f"{args.jid}: {client.cancel(args.jid, args.wait_s)}")
        elif args.command == "savepoint":
            print(client.savepoint(args.jid, args.dir, args.cancel, args.wait_s))
        elif args.command == "stop":
            print(client.stop(args.jid, args.dir, args.wait_s))
        elif args.command == "watch":
            watch(client, args.jid, args.interval_s, args.for_s, lambda s: print(s, flush=True))
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
