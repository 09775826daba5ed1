"""``python -m runners.schemaregistry``: serve the schema registry with uvicorn until
SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from runners.schemaregistry.app import SchemaStore, create_app


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runners.schemaregistry",
        description="Local Confluent-compatible schema registry (Avro, in memory).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=8085, help="TCP port")
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    uvicorn.run(
        create_app(SchemaStore.seeded()),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.log_level in ("info", "debug"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
