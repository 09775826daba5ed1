"""The property topology on Quix Streams, the nearest Python peer of the Beam pipeline.

    <quix venv>/bin/python -m bench.quix_topology '<json arguments>'

Runs in its own virtualenv (``bench.compare`` builds ``.local/quix-venv``): quixstreams 3.28.1
requires confluent-kafka < 2.13, the project pins 2.16.1, so it cannot share the project's venv.
The project's code (and Beam, which ``transforms`` import) come from the project's venv through
a ``.pth`` file placed after Quix's own packages.

The topology, written the Quix way where Quix has a way:

- one ``StreamingDataFrame`` per input topic, values as bytes; decode → validate → late gate with
  the same plain functions as the raw loop (``bench.raw_loop.Topology.admit``; the gate's stream
  time per input partition lives in a dict: Quix state is per message key, not per partition);
- routing by ``filter`` branches, each ``to_topic`` with a serializer that writes the Confluent
  wire format (``bench.raw_loop.encode_output``) and the contract's key;
- counts by zip: ``group_by("zip_code")`` (a repartition topic) + a stateful ``apply`` (RocksDB
  state with a changelog topic: Quix's fault tolerance), one update per event;
- fraud alerts: views are keyed by user already: a stateful ``apply`` counts per 10-minute window
  and emits on the view that crosses the threshold;
- hourly views: ``group_by("property_id")`` + a stateful count per hour, emitting the running
  count on every view (Quix's ``tumbling_window(...).final()`` never closes the last windows of a
  bounded input, so their counts would be missing); more output records than Beam's one per
  window.

Records at or after the given stop offsets (the end markers) are skipped. It stops when no new
message came for ``idle_s`` seconds (``Application.run(timeout=...)``) and
prints one JSON line: records consumed from the inputs and the first/last consumption times.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from functools import partial
from typing import Any

from bench.raw_loop import OUTPUT_SCHEMAS, Topology, TopologyRules, encode_output
from transforms.aggregation import is_high_value, zip_count
from transforms.enrichment import enriched_event
from transforms.fraud import alert, crosses_threshold, window_start_ms
from transforms.types import KafkaRecord
from transforms.windowing import view_count

NO_MARKET_DATA = "no market-data service configured"
DEFAULT_RULES = TopologyRules()


def main(arguments: dict[str, Any]) -> dict[str, Any]:
    from quixstreams import Application, message_context
    from quixstreams.models.serializers import Serializer

    # The topology's numbers: the defaults, or bench.latency's compressed windows.
    rules = TopologyRules(**arguments.get("rules", {}))
    inputs, outputs = arguments["inputs"], arguments["outputs"]
    front = Topology(inputs["events"], inputs["views"], rules)
    # The end-of-backfill markers (and anything after them) are not part of the input.
    stops = {(t, p): end for t, p, end in arguments["stop_offsets"]}
    stats: dict[str, Any] = {"consumed": 0, "first_consumed_s": None, "last_consumed_s": None}

    class WireFormat(Serializer):
        """Avro in the Confluent wire format, as every system of the benchmark writes."""

        def __init__(self, output: str) -> None:
            self._output = output

        def __call__(self, value: dict[str, Any], ctx: Any) -> bytes:
            return encode_output(self._output, value)[1]

    app = Application(
        broker_address=arguments["bootstrap"],
        consumer_group=f"quix-bench-{time.monotonic_ns()}",
        auto_offset_reset="earliest",
        state_dir=tempfile.mkdtemp(prefix="quix-state-"),
        loglevel="WARNING",
        consumer_extra_config={
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
        },
        producer_extra_config={
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            # bench.latency lowers linger.ms: a record waits up to linger.ms before it is sent.
            **arguments.get("producer_extra", {}),
        },
    )
    topics = {
        name: app.topic(outputs[name], value_serializer=WireFormat(name), key_serializer="bytes")
        for name in OUTPUT_SCHEMAS
    }

    def key_of(name: str):
        field = OUTPUT_SCHEMAS[name][1]

        def key(value: dict[str, Any]) -> bytes | None:
            k = value.get(field)
            return k.encode() if isinstance(k, str) else k

        return key

    def admit(value: bytes | None, key: bytes | None, timestamp: int, _headers: Any) -> list:
        ctx = message_context()
        if ctx.offset >= stops.get((ctx.topic, ctx.partition), 0):
            return []
        now = time.time()
        stats["first_consumed_s"] = stats["first_consumed_s"] or now
        stats["last_consumed_s"] = now
        stats["consumed"] += 1
        record = KafkaRecord(key, value, ctx.topic, ctx.partition, ctx.offset, timestamp)
        rejected, payload = front.admit(record)
        return rejected if payload is None else [("valid", payload)]

    def named(name: str):
        def test(item: tuple[str, dict[str, Any]]) -> bool:
            return item[0] == name

        return test

    def value_of(item: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        return item[1]

    def route(sdf, name: str) -> None:
        sdf.filter(named(name)).apply(value_of).to_topic(topics[name], key=key_of(name))

    # Property events.
    events = app.dataframe(
        app.topic(inputs["events"], value_deserializer="bytes", key_deserializer="bytes")
    ).apply(admit, expand=True, metadata=True)
    route(events, "dead_letters")
    route(events, "late")
    valid_events = events.filter(named("valid")).apply(value_of)
    valid_events.filter(partial(is_high_value_event, rules=rules)).to_topic(
        topics["high_value"], key=key_of("high_value")
    )
    valid_events.filter(is_listing_update).apply(fallback).to_topic(
        topics["enriched"], key=key_of("enriched")
    )
    by_zip = valid_events.group_by("zip_code", name="zip")
    by_zip.apply(count_zip, stateful=True).to_topic(
        topics["counts_by_zip"], key=key_of("counts_by_zip")
    )

    # Property views.
    views = app.dataframe(
        app.topic(inputs["views"], value_deserializer="bytes", key_deserializer="bytes")
    ).apply(admit, expand=True, metadata=True)
    route(views, "dead_letters")
    route(views, "late")
    valid_views = views.filter(named("valid")).apply(value_of)
    valid_views.apply(partial(fraud_alert, rules=rules), stateful=True).filter(
        is_not_none
    ).to_topic(topics["alerts"], key=key_of("alerts"))
    by_property = valid_views.group_by("property_id", name="hourly")
    by_property.apply(partial(count_hour, rules=rules), stateful=True).to_topic(
        topics["views_hourly"], key=key_of("views_hourly")
    )

    app.run(timeout=float(arguments.get("idle_s", 5.0)))
    return stats


# ---- the steps' plain functions (module level: no lambdas) ----------------------------------


def is_high_value_event(payload: dict[str, Any], rules: TopologyRules = DEFAULT_RULES) -> bool:
    return is_high_value(payload, rules.high_value_threshold)


def is_listing_update(payload: dict[str, Any]) -> bool:
    return payload["event_type"] == "LISTING_UPDATED"


def fallback(payload: dict[str, Any]) -> dict[str, Any]:
    return enriched_event(payload, None, NO_MARKET_DATA)


def is_not_none(value: Any) -> bool:
    return value is not None


def count_zip(payload: dict[str, Any], state: Any) -> dict[str, Any]:
    """Running count per zip (the message key after ``group_by``), one update per event."""
    count = state.get("count", 0) + 1
    last = max(state.get("last", payload["event_time"]), payload["event_time"])
    state.set("count", count)
    state.set("last", last)
    return zip_count(payload["zip_code"], count, last)


def fraud_alert(
    payload: dict[str, Any], state: Any, rules: TopologyRules = DEFAULT_RULES
) -> dict[str, Any] | None:
    """The alert of the view that takes its user's window count past the threshold, else None."""
    window_ms = rules.fraud_window_s * 1000
    start = window_start_ms(int(payload["event_time"]), window_ms)
    before = state.get(f"w{start}", 0)
    state.set(f"w{start}", before + 1)
    if crosses_threshold(before, before + 1, rules.fraud_threshold):
        return alert(
            payload["user_id"], start, start + window_ms, before + 1, rules.fraud_threshold
        )
    return None


def count_hour(
    payload: dict[str, Any], state: Any, rules: TopologyRules = DEFAULT_RULES
) -> dict[str, Any]:
    """The running view count of the property's hour (the key after ``group_by``)."""
    size_ms = rules.window_size_s * 1000
    start = window_start_ms(int(payload["event_time"]), size_ms)
    count = state.get(f"h{start}", 0) + 1
    state.set(f"h{start}", count)
    return view_count(payload["property_id"], start, start + size_ms, count, "ON_TIME")


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
