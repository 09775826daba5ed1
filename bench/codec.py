"""Benchmark: the codec's decode→encode path against a raw fastavro loop on the same records.

    python -m bench.codec [--records 10000] [--repeats 30] [--pipeline-records 20000]

Paths timed (best of ``--repeats``, records per CPU second of this process, the loops taking
turns, so that other load on a shared machine skews the ratio as little as possible):

- ``raw``: a bare fastavro loop: ``schemaless_reader`` on the body, ``schemaless_writer`` back
  behind the same 5-byte header, with the same parsed schema the codec uses (times as int).
- ``raw_logical``: the same loop with the contract schema as written (fastavro converts
  ``timestamp-millis`` to ``datetime`` and back): what a naive implementation would pay.
- ``codec``: ``AvroDecoder.decode`` → ``AvroEncoder.encode``, the functions ``DecodeAvro`` and
  ``EncodeAvro`` run per element (header checks, id look-up, trailing-bytes check, strict write).
- ``pipeline`` (optional): ``Create | DecodeAvro | EncodeAvro`` on the DirectRunner or Prism
  (``--pipeline-runner``), wall time with start-up; this measures Beam's per-element overhead
  more than the codec.

The target is ``codec / raw >= 0.90``. Results also go to ``bench/results/codec.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro

from schemas import CATALOG, SCHEMA_DIR
from transforms.codec import AvroDecoder, AvroEncoder, CatalogSchemas, encode_record

RESULTS = Path(__file__).resolve().parent / "results" / "codec.json"
T0 = 1_767_225_600_000


def make_events(n: int, seed: int = 42) -> list[dict[str, Any]]:
    """``n`` plausible PropertyEvents (seeded)."""
    rng = random.Random(seed)
    event_types = ["LISTING_CREATED", "LISTING_UPDATED", "PRICE_CHANGED", "LISTING_REMOVED"]
    property_types = ["SINGLE_FAMILY", "CONDO", "TOWNHOUSE", "MULTI_FAMILY", "LAND"]
    return [
        {
            "event_id": f"{rng.getrandbits(128):032x}",
            "event_type": rng.choice(event_types),
            "property_id": f"prop-{rng.randrange(50_000)}",
            "zip_code": f"{rng.randrange(100_000):05d}",
            "property_type": rng.choice(property_types),
            "price": rng.randrange(50_000, 5_000_000),
            "bedrooms": rng.choice([None, 1, 2, 3, 4, 5]),
            "bathrooms": rng.choice([None, 1.0, 1.5, 2.0, 2.5]),
            "square_feet": rng.choice([None, rng.randrange(300, 8000)]),
            "event_time": T0 + i * 1000,
        }
        for i in range(n)
    ]


def raw_loop(schema: dict[str, Any]) -> Callable[[list[bytes]], int]:
    def run(values: list[bytes]) -> int:
        n = 0
        for value in values:
            fo = io.BytesIO(value)
            fo.seek(5)
            record = fastavro.schemaless_reader(fo, schema, None)
            out = io.BytesIO()
            out.write(value[:5])
            fastavro.schemaless_writer(out, schema, record)
            n += len(out.getvalue())
        return n

    return run


def codec_loop() -> Callable[[list[bytes]], int]:
    entry = CATALOG.latest("PropertyEvent")
    decoder = AvroDecoder(entry, CatalogSchemas(CATALOG))
    encoder = AvroEncoder(entry)

    def run(values: list[bytes]) -> int:
        n = 0
        for value in values:
            _schema_id, record = decoder.decode(value)
            n += len(encoder.encode(record))
        return n

    return run


def best_rates(
    loops: dict[str, Callable[[list[bytes]], int]], values: list[bytes], repeats: int
) -> dict[str, float]:
    """Records per CPU second of each loop, best of ``repeats``. CPU time of this process (not
    wall time) and loops taking turns within each repeat, so that other processes on a shared
    machine skew the comparison as little as possible."""
    expected = sum(len(v) for v in values)
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(repeats):
        for name, fn in loops.items():
            start = time.process_time()
            produced = fn(values)
            best[name] = min(best[name], time.process_time() - start)
            assert produced == expected, f"{name} did not reproduce its input bytes"
    return {name: len(values) / seconds for name, seconds in best.items()}


def pipeline_rate(values: list[bytes], runner_args: list[str]) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.codec import DecodeAvro, EncodeAvro, FieldKey
    from transforms.types import KafkaRecord

    def payload(decoded: Any) -> dict[str, Any]:
        return decoded.payload

    records = [KafkaRecord(None, v, "bench", 0, i, T0) for i, v in enumerate(values)]
    start = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(runner_args)) as p:
        decoded = (
            p
            | "Records" >> beam.Create(records, reshuffle=False)
            | "Decode" >> DecodeAvro("PropertyEvent")
        )
        _ = (
            decoded.decoded
            | "Payload" >> beam.Map(payload)
            | "Encode" >> EncodeAvro("PropertyEvent", None, FieldKey("property_id"))
        )
    return len(values) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--pipeline-records", type=int, default=20_000, help="0 skips the DirectRunner run"
    )
    parser.add_argument(
        "--pipeline-runner",
        default="DirectRunner",
        choices=["DirectRunner", "PrismRunner"],
        help="runner of the pipeline path (PrismRunner needs --prism-location)",
    )
    parser.add_argument("--prism-location", help="the prism binary, e.g. .local/bin/prism")
    args = parser.parse_args(argv)
    runner_args = [f"--runner={args.pipeline_runner}"]
    if args.pipeline_runner == "PrismRunner":
        if not args.prism_location:
            parser.error("--pipeline-runner=PrismRunner needs --prism-location")
        runner_args += [f"--prism_location={args.prism_location}", "--environment_type=LOOPBACK"]

    values = [encode_record(e, "PropertyEvent") for e in make_events(args.records)]
    with_logical_types = fastavro.parse_schema(
        json.loads((SCHEMA_DIR / "property_event.avsc").read_text(encoding="utf-8"))
    )
    loops = {
        "raw": raw_loop(CATALOG.latest("PropertyEvent").parsed),
        "raw_logical": raw_loop(with_logical_types),
        "codec": codec_loop(),
    }
    rates = best_rates(loops, values, args.repeats)
    if args.pipeline_records:
        rates["pipeline"] = pipeline_rate(values[: args.pipeline_records], runner_args)
    report = {
        "records": args.records,
        "repeats": args.repeats,
        "records_per_cpu_s": {k: round(v) for k, v in rates.items() if k != "pipeline"},
        "pipeline_records_per_wall_s": round(rates["pipeline"]) if "pipeline" in rates else None,
        "pipeline_runner": args.pipeline_runner if args.pipeline_records else None,
        "codec_vs_raw": round(rates["codec"] / rates["raw"], 3),
        "codec_vs_raw_logical": round(rates["codec"] / rates["raw_logical"], 3),
    }
    for name, rate in rates.items():
        unit = "records/s (wall, start-up included)" if name == "pipeline" else "records/CPU-s"
        print(f"{name:12s} {rate:12,.0f} {unit}")
    print(f"codec / raw         = {report['codec_vs_raw']:.3f}  (target >= 0.90)")
    print(f"codec / raw_logical = {report['codec_vs_raw_logical']:.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
