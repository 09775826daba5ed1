"""``python -m runners.marketdata``: serve the market-data API with uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from runners.marketdata.app import Faults, MarketDataService, create_app
from runners.marketdata.dataset import DEFAULT_SEED, DEFAULT_ZIP_COUNT, MarketDataset


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runners.marketdata", description="Local market-data HTTP service."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=8700, help="TCP port")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="dataset and fault seed")
    parser.add_argument(
        "--zip-count", type=int, default=DEFAULT_ZIP_COUNT, help="zip codes 10001.. served"
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="added latency per request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500")
    parser.add_argument(
        "--rate-limit-rps", type=float, default=None, help="requests/s before 429 (none: no limit)"
    )
    parser.add_argument("--retry-after-s", type=int, default=1, help="Retry-After when rps is 0")
    parser.add_argument("--down", action="store_true", help="answer 503 to every API request")
    parser.add_argument(
        "--malformed-rate", type=float, default=0.0, help="fraction of 200s with a broken body"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        faults = Faults(
            latency_ms=args.latency_ms,
            error_rate=args.error_rate,
            rate_limit_rps=args.rate_limit_rps,
            retry_after_s=args.retry_after_s,
            down=args.down,
            malformed_rate=args.malformed_rate,
        ).validated()
        dataset = MarketDataset.generate(seed=args.seed, zip_count=args.zip_count)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    service = MarketDataService(dataset, faults)
    uvicorn.run(
        create_app(service),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.log_level in ("info", "debug"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
