"""Enrichment throughput (events/s): warm cache, cold cache, no cache, service down (circuit open).

Run: ``python -m bench.enrichment [--events 5000] [--keys 1000] [--json out.json]``.

Starts its own market-data service and redis-server on loopback (free ports), runs
``EnrichWithMarketData`` on Beam's FnApiRunner (in process, one worker: what the DirectRunner runs
here) over N PropertyEvents spread over ``--keys`` distinct ``(zip, type)`` keys, and times
``run() .. wait_until_finish()`` for each scenario (``--runner PrismRunner`` for Prism). A
``baseline`` scenario runs the same pipeline without enrichment so the pipeline's own cost
(start-up included) can be subtracted: ``enrich_only`` is ``N / (elapsed - baseline_elapsed)``.

Scenarios, in order:
- ``baseline``: Create → Map(identity) → count; no enrichment.
- ``no_cache``: every event calls the service (connection reuse, no cache).
- ``no_cache_batch``: the same with ``batch_size`` (BatchElements → ``POST /v1/market/batch``).
- ``cold_cache``: empty Redis: one Redis read per event, a call per cache miss, writes.
- ``warm_cache``: the same events again: every event a Redis hit, no call.
- ``cold_cache_batch`` / ``warm_cache_batch``: the same two with batched calls.
- ``unknown_no_negative_cache``: events whose keys the service does not know (every call a 404),
  Redis cache with ``not_found_ttl_s=0``: every event calls the service (the cost before the
  negative cache).
- ``unknown_cold_cache`` / ``unknown_warm_cache``: the same events with ``not_found_ttl_s``
  (the pipeline's default, 300 s): a 404 per missing key, then every event a Redis hit; compare
  ``unknown_warm_cache`` with ``warm_cache`` (known keys).
- ``service_down``: the service answers 503; after ``failure_threshold`` failures the circuit is
  open for the rest of the run and events fall back without a call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import apache_beam as beam
import redis as redis_client
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import PropertyConfig
from runners.marketdata.dataset import PROPERTY_TYPES, zip_codes
from runners.marketdata.processes import market_data_server, redis_server
from runners.presets import PRISM_BINARY
from transforms.enrichment import COUNTER_NAMESPACE, EnrichWithMarketData
from transforms.types import Decoded, KafkaRecord

NOT_FOUND_TTL_S = PropertyConfig.cache_not_found_ttl_s  # the pipeline's default


@dataclass
class Result:
    scenario: str
    events: int
    elapsed_s: float
    events_per_s: float
    enrich_only_events_per_s: float | None
    counters: dict[str, int]


def unknown_zip_codes(count: int) -> list[str]:
    """``count`` five-digit zip codes the market dataset does not hold (counting down from
    99999)."""
    known = set(zip_codes())
    return [z for z in (f"{n:05d}" for n in range(99_999, 0, -1)) if z not in known][:count]


def generate_events(n: int, keys: int, unknown: bool = False) -> Iterator[Decoded]:
    """n PropertyEvents cycling over ``keys`` (zip, type) keys, of the dataset or (``unknown``)
    outside it; generated inside the pipeline so start-up does not pickle them (a Create of
    3 000 events cost ~2 s of bz2 at submission)."""
    zips = unknown_zip_codes(keys) if unknown else zip_codes()
    pairs = [(z, t) for z in zips for t in PROPERTY_TYPES][:keys]
    for i in range(n):
        zip_code, ptype = pairs[i % len(pairs)]
        payload = {
            "event_id": f"e-{i}",
            "event_type": "LISTING_UPDATED",
            "property_id": f"p-{i}",
            "zip_code": zip_code,
            "property_type": ptype,
            "price": 300_000 + i,
            "bedrooms": 3,
            "bathrooms": 2.0,
            "square_feet": 1500,
            "event_time": 1_780_000_000_000 + i,
        }
        source = KafkaRecord(None, b"", "property-events", 0, i, payload["event_time"])
        yield Decoded(payload=payload, schema_id=1, source=source)


def _identity(element: Decoded) -> Decoded:
    return element


def runner_options(runner: str) -> PipelineOptions:
    if runner == "PrismRunner":
        return PipelineOptions(
            [
                "--runner=PrismRunner",
                f"--prism_location={PRISM_BINARY}",
                "--environment_type=LOOPBACK",
            ]
        )
    # FnApiRunner directly: the DirectRunner would first try Prism (a download, failing offline).
    return PipelineOptions(["--runner=FnApiRunner"])


def run_once(
    runner: str, n: int, keys: int, transform: beam.PTransform | None, unknown: bool = False
) -> tuple[float, dict]:
    pipeline = beam.Pipeline(options=runner_options(runner))
    pcoll = (
        pipeline
        | "Seed" >> beam.Create([n], reshuffle=False)
        | "Generate" >> beam.FlatMap(generate_events, keys, unknown)
    )
    if transform is None:
        pcoll = pcoll | "Identity" >> beam.Map(_identity)
    else:
        pcoll = pcoll | "Enrich" >> transform
    _ = pcoll | "Count" >> beam.combiners.Count.Globally()
    started = time.perf_counter()
    result = pipeline.run()
    result.wait_until_finish()
    elapsed = time.perf_counter() - started
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace(COUNTER_NAMESPACE))[
            "counters"
        ]
    }
    return elapsed, counters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.enrichment", description=__doc__)
    parser.add_argument("--events", type=int, default=5000, help="events per scenario")
    parser.add_argument("--keys", type=int, default=1000, help="distinct (zip, type) keys")
    parser.add_argument("--batch-size", type=int, default=50, help="of the *_batch scenarios")
    parser.add_argument("--runner", default="FnApiRunner", choices=["FnApiRunner", "PrismRunner"])
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.events < 1 or not 1 <= args.keys <= 1000:
        parser.error("--events must be >= 1 and --keys in 1..1000")

    results: list[Result] = []

    def record(name: str, elapsed: float, counters: dict[str, Any]) -> None:
        baseline = results[0].elapsed_s if results else None
        enrich_only = (
            args.events / (elapsed - baseline)
            if baseline is not None and elapsed > baseline
            else None
        )
        res = Result(name, args.events, elapsed, args.events / elapsed, enrich_only, counters)
        results.append(res)
        extra = f"{enrich_only:9.0f}" if enrich_only else "        -"
        print(
            f"{name:<26} {elapsed:8.2f} s {res.events_per_s:9.0f} ev/s  enrich-only {extra} ev/s"
            f"  {json.dumps(counters, sort_keys=True)}",
            flush=True,
        )

    with market_data_server() as service, redis_server() as redis:

        def transform(**overrides: Any) -> EnrichWithMarketData:
            options: dict[str, Any] = {
                "call_timeout_s": 2.0,
                "circuit_id": uuid.uuid4().hex,
                "cooldown_s": 300.0,
            }
            options.update(overrides)
            return EnrichWithMarketData(service.url, **options)

        def cached(not_found_ttl_s: int = 0, **overrides: Any) -> EnrichWithMarketData:
            return transform(**overrides).with_redis_cache(
                redis.host, redis.port, 3600, not_found_ttl_s=not_found_ttl_s
            )

        def flush_cache() -> None:
            client = redis_client.Redis(redis.host, redis.port)
            client.flushall()
            client.close()

        n, keys, runner, batch = args.events, args.keys, args.runner, args.batch_size
        record("baseline", *run_once(runner, n, keys, None))
        record("no_cache", *run_once(runner, n, keys, transform()))
        record("no_cache_batch", *run_once(runner, n, keys, transform(batch_size=batch)))
        flush_cache()
        record("cold_cache", *run_once(runner, n, keys, cached()))
        record("warm_cache", *run_once(runner, n, keys, cached()))
        flush_cache()
        record("cold_cache_batch", *run_once(runner, n, keys, cached(batch_size=batch)))
        record("warm_cache_batch", *run_once(runner, n, keys, cached(batch_size=batch)))
        flush_cache()
        negative = {"not_found_ttl_s": NOT_FOUND_TTL_S}
        record("unknown_no_negative_cache", *run_once(runner, n, keys, cached(), unknown=True))
        record("unknown_cold_cache", *run_once(runner, n, keys, cached(**negative), unknown=True))
        record("unknown_warm_cache", *run_once(runner, n, keys, cached(**negative), unknown=True))
        service.set_faults(down=True)
        record("service_down", *run_once(runner, n, keys, transform()))

    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(r) for r in results], out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
