"""``python -m runners.local``: up, down, status, logs and topics on the command line."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import runners.local
from runners import _procs
from runners import kafka as kafka_admin
from runners.cli import FullHelpParser
from runners.local.options import UpOptions
from runners.local.services import ALL_SERVICES, HOME_ENV, KAFKA
from runners.local.stack import Stack
from runners.local.supervisor import down, operations_lines, status_lines, ui_lines, up


def parse_ports(specs: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not value.isdigit():
            raise ValueError(f"--port {spec!r}: expected SERVICE=PORT or SERVICE.ROLE=PORT")
        if key.split(".")[0] not in ALL_SERVICES:
            raise ValueError(f"--port {spec!r}: unknown service; choose from {list(ALL_SERVICES)}")
        out[key] = int(value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = FullHelpParser(
        prog="python -m runners.local", description=(runners.local.__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--home", help=f"stack home (default .local, or ${HOME_ENV})")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start services (default: the default set)")
    p_up.add_argument("services", nargs="*", help=f"any of {', '.join(ALL_SERVICES)}")
    p_up.add_argument("--flink", action="store_true", help="also start the Flink job server")
    p_up.add_argument("--brokers", type=int, default=1, choices=(1, 3), help="Kafka brokers")
    p_up.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="SERVICE[.ROLE]=PORT",
        help="pin a port (strict: fails if taken); 0 = any free port",
    )
    p_up.add_argument(
        "--taskmanagers", type=int, default=1, help="TaskManagers of flink-cluster (1 to 8)"
    )
    p_up.add_argument("--slots", type=int, default=2, help="task slots per TaskManager")
    p_up.add_argument("--no-topics", action="store_true", help="do not create runners/topics.toml")
    p_up.add_argument(
        "--secure",
        action="store_true",
        help="Kafka with SASL_SSL (SCRAM-SHA-512), TLS and the ACLs of runners/security.toml",
    )
    p_down = sub.add_parser("down", help="stop services (default: all)")
    p_down.add_argument("services", nargs="*")
    sub.add_parser("status", help="what runs where")
    p_logs = sub.add_parser("logs", help="tail a service's log")
    p_logs.add_argument("service", choices=ALL_SERVICES)
    p_logs.add_argument("-n", "--lines", type=int, default=50)
    p_logs.add_argument("-f", "--follow", action="store_true", help="follow (Ctrl-C to stop)")
    p_topics = sub.add_parser("topics", help="(re)create the topics of runners/topics.toml")
    p_topics.add_argument("--recreate", action="store_true", help="delete and create (data lost)")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            started = time.monotonic()
            options = UpOptions(
                brokers=args.brokers,
                port_overrides=parse_ports(args.port),
                create_topics=not args.no_topics,
                secure=args.secure,
                taskmanagers=args.taskmanagers,
                slots=args.slots,
            )
            stack = up(args.services, options=options, home=args.home, flink=args.flink)
            print(f"stack up in {time.monotonic() - started:.1f}s; state {stack.paths.state_file}")
            for line in ui_lines(stack):
                print(line)
        elif args.command == "down":
            down(args.services, home=args.home)
        elif args.command == "status":
            print("\n".join(status_lines(args.home)))
            for line in operations_lines(Stack.load(args.home)):
                print(line)
        elif args.command == "logs":
            log = Stack.load(args.home).log_path(args.service)
            if args.follow:
                os.execvp("tail", ["tail", "-n", str(args.lines), "-F", str(log)])
            print(_procs.tail(log, args.lines), end="")
        elif args.command == "topics":
            stack = Stack.load(args.home)
            stack.check_alive(KAFKA)
            actions = kafka_admin.ensure_topics(
                stack.bootstrap_servers,
                kafka_admin.load_topics(),
                recreate=args.recreate,
                client_config=stack.kafka_client_config("admin"),
            )
            for topic, action in actions.items():
                print(f"{topic}: {action}")
    except (RuntimeError, ValueError, TimeoutError, OSError) as exc:
        # StackError, StartupError, PortInUseError and Kafka admin failures: one clear line.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
