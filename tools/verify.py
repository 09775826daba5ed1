"""Read the property pipeline's output topics back and compare them with the simulator's oracle.

Used by the end-to-end tests, the demo (``make run``) and the benchmarks, so that every one of them
checks the same thing: a fast wrong answer is not a result.

Outputs are compared by their final values: the last (largest) running count per zip, the last
(accumulating) pane per property and hour, the set of alert ids (and no duplicates), the number of
dead letters and late records, the high-value event ids, and the enriched events (one per
LISTING_UPDATED event). With a ``market`` lookup (the dataset the market-data service serves),
each enriched event's status and market fields are checked too (``enrichment_differences``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.kafka_access import KafkaAccessError, fatal_connect_error
from pipelines.options import PropertyTopics
from pipelines.property import OUTPUT_SPECS
from tools.simulate import Oracle
from transforms.codec import DecodeError, decode_record
from transforms.enrichment.rules import ENRICHED, FALLBACK, MARKET_FIELDS, STALE

#: The market data of a ``(zip_code, property_type)`` as the service serves it, or None when the
#: service does not know the key (it answers 404).
MarketLookup = Callable[[str, str], Mapping[str, Any] | None]
_ENRICHMENT_KEYS = ("event_id", "zip_code", "property_type", "enrichment_status", *MARKET_FIELDS)


@dataclass
class Summary:
    """The final values of the outputs, in the oracle's terms."""

    counts_by_zip: dict[str, int] = field(default_factory=dict)
    hourly_views: dict[str, int] = field(default_factory=dict)
    alert_ids: list[str] = field(default_factory=list)
    duplicate_alerts: int = 0
    high_value_event_ids: list[str] = field(default_factory=list)
    enriched_event_ids: list[str] = field(default_factory=list)
    enrichment_status: dict[str, int] = field(default_factory=dict)
    # Per enriched event: its key, status and market fields (what the enrichment checks read).
    enriched: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0
    dead_letters_by_stage: dict[str, int] = field(default_factory=dict)
    late: int = 0
    records: dict[str, int] = field(default_factory=dict)
    # Hourly records repeating an earlier record of the same (property, window, count): a pane
    # that changed nothing (0 on every runner: windowing.AccumulatePanes writes one record per
    # change; a restart from a checkpoint may repeat panes, which are duplicates, not differences).
    repeated_hourly_panes: int = 0


def summarize(outputs: Mapping[str, Iterable[Mapping[str, Any]]]) -> Summary:
    """Final values of the outputs (payload dicts, or DeadLetter records, by output name)."""
    s = Summary()
    for name in OUTPUT_SPECS:
        s.records[name] = 0
    for z in outputs.get("counts_by_zip", ()):
        s.records["counts_by_zip"] += 1
        s.counts_by_zip[z["zip_code"]] = max(s.counts_by_zip.get(z["zip_code"], 0), z["count"])
    panes: Counter[tuple[str, int]] = Counter()
    for v in outputs.get("views_hourly", ()):
        s.records["views_hourly"] += 1
        key = f"{v['property_id']}|{v['window_start']}"
        s.hourly_views[key] = max(s.hourly_views.get(key, 0), v["view_count"])
        panes[(key, v["view_count"])] += 1
    s.repeated_hourly_panes = sum(n - 1 for n in panes.values())
    alerts = Counter(a["alert_id"] for a in outputs.get("alerts", ()))
    s.records["alerts"] = sum(alerts.values())
    s.alert_ids = sorted(alerts)
    s.duplicate_alerts = sum(n - 1 for n in alerts.values())
    for e in outputs.get("high_value", ()):
        s.records["high_value"] += 1
        s.high_value_event_ids.append(e["event_id"])
    status: Counter[str] = Counter()
    for e in outputs.get("enriched", ()):
        s.records["enriched"] += 1
        s.enriched_event_ids.append(e["event_id"])
        status[e["enrichment_status"]] += 1
        s.enriched.append(
            {
                k: e.get(k)
                for k in (
                    "event_id",
                    "zip_code",
                    "property_type",
                    "enrichment_status",
                    *MARKET_FIELDS,
                )
            }
        )
    s.enrichment_status = dict(status)
    stages: Counter[str] = Counter()
    for d in outputs.get("dead_letters", ()):
        stages[d["stage"] if isinstance(d, Mapping) else d.stage] += 1
    s.dead_letters = sum(stages.values())
    s.records["dead_letters"] = s.dead_letters
    s.dead_letters_by_stage = dict(stages)
    s.late = sum(1 for _ in outputs.get("late", ()))
    s.records["late"] = s.late
    return s


def enrichment_differences(
    summary: Summary, market: MarketLookup, *, service_healthy: bool = True
) -> list[str]:
    """What is wrong with the enriched events, given the data the market-data service serves.

    An event whose key the service does not know is FALLBACK with null market fields. An
    ENRICHED or STALE event carries exactly the service's market fields for its key (the dataset
    is fixed per seed, so a stale copy holds the same values). With ``service_healthy`` (no
    faults injected while the run flowed), every event with a known key is ENRICHED: a FALLBACK
    there means the pipeline did not reach or did not use the service.
    """
    problems: dict[str, list[str]] = {}

    def wrong(kind: str, event_id: str) -> None:
        problems.setdefault(kind, []).append(event_id)

    for e in summary.enriched:
        expected = market(str(e["zip_code"]), str(e["property_type"]))
        status, event_id = e["enrichment_status"], str(e["event_id"])
        if expected is None:
            if status != FALLBACK:
                wrong(f"unknown key not FALLBACK ({status})", event_id)
        elif status in (ENRICHED, STALE):
            if any(e[f] != expected[f] for f in MARKET_FIELDS):
                wrong(f"{status} with market fields unlike the service's", event_id)
            if status == STALE and service_healthy:
                wrong("STALE although the service was healthy", event_id)
        elif status == FALLBACK:
            if any(e[f] is not None for f in MARKET_FIELDS):
                wrong("FALLBACK with market fields set", event_id)
            if service_healthy:
                wrong("FALLBACK although the service knows the key and was healthy", event_id)
        else:
            wrong(f"unknown status {status!r}", event_id)
    return [
        f"enrichment: {len(ids)} events {kind}, e.g. {sorted(ids)[:3]}"
        for kind, ids in sorted(problems.items())
    ]


def differences(
    summary: Summary,
    oracle: Oracle,
    market: MarketLookup | None = None,
    *,
    service_healthy: bool = True,
) -> list[str]:
    """What differs from the oracle, one line per output; empty when everything matches.

    With ``market``, the enriched events' statuses and values are checked against it too
    (``enrichment_differences``); without it, only their ids are.
    """
    diffs: list[str] = []

    def mapping(name: str, got: Mapping[str, int], want: Mapping[str, int]) -> None:
        wrong = {
            k: (want.get(k), got.get(k)) for k in set(want) | set(got) if want.get(k) != got.get(k)
        }
        if wrong:
            sample = dict(sorted(wrong.items())[:5])
            diffs.append(f"{name}: {len(wrong)} keys differ (expected, got): {sample}")

    def same(name: str, got: Any, want: Any) -> None:
        if got == want:
            return
        if isinstance(want, list):
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            diffs.append(
                f"{name}: expected {len(want)}, got {len(got)}; missing {len(missing)} "
                f"{missing[:3]}, unexpected {len(extra)} {extra[:3]}"
            )
        else:
            diffs.append(f"{name}: expected {want}, got {got}")

    mapping("counts_by_zip", summary.counts_by_zip, oracle.counts_by_zip)
    mapping("hourly_views", summary.hourly_views, oracle.hourly_views)
    same("alert ids", summary.alert_ids, sorted(oracle.alert_ids))
    same("duplicate alerts", summary.duplicate_alerts, 0)
    same(
        "high-value events",
        sorted(summary.high_value_event_ids),
        sorted(oracle.high_value_event_ids),
    )
    same(
        "enriched events",
        sorted(summary.enriched_event_ids),
        sorted(oracle.listing_updated_event_ids),
    )
    same("dead letters", summary.dead_letters, oracle.dead_letters)
    same("late records", summary.late, oracle.late)
    if market is not None:
        diffs.extend(enrichment_differences(summary, market, service_healthy=service_healthy))
    return diffs


def read_outputs(
    bootstrap_servers: str,
    topics: PropertyTopics,
    *,
    timeout_s: float = 60.0,
    consumer_config: Mapping[str, str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every record now in each output topic, decoded (from offset 0 to the high watermark).

    Raises ``TimeoutError`` when a topic cannot be read to its end within ``timeout_s``,
    ``KafkaAccessError`` (one line) as soon as the broker refuses the login or the TLS handshake
    (retrying would only wait out ``timeout_s``), and ``DecodeError`` when an output record does
    not decode: our own outputs must.
    """
    from confluent_kafka import Consumer, TopicPartition

    refused: list[str] = []
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"verify-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **(consumer_config or {}),
            "error_cb": lambda err: refused.append(fatal_connect_error(err) or ""),
            "log_level": 0,  # a refusal is raised as one line, not logged per retry
        }
    )
    deadline = time.monotonic() + timeout_s
    result: dict[str, list[dict[str, Any]]] = {}
    try:
        for name, spec in OUTPUT_SPECS.items():
            topic, schema = getattr(topics, spec.topic_field), spec.schema
            metadata = _topic_metadata(consumer, topic, deadline, refused, bootstrap_servers)
            partitions = (
                sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
            )
            ends = {}
            for p in partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=max(1.0, deadline - time.monotonic())
                )
                if high > low:
                    ends[p] = high
            consumer.assign([TopicPartition(topic, p, 0) for p in ends])
            records: list[dict[str, Any]] = []
            position = dict.fromkeys(ends, 0)
            while any(position[p] < ends[p] for p in ends):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic}: {position} of {ends} after {timeout_s}s")
                for msg in consumer.consume(500, timeout=0.5):
                    if msg.error():
                        raise RuntimeError(f"reading {topic}: {msg.error()}")
                    position[msg.partition()] = msg.offset() + 1
                    if msg.offset() < ends[msg.partition()]:
                        try:
                            records.append(decode_record(msg.value(), schema)[1])
                        except DecodeError as exc:
                            raise DecodeError(
                                f"{topic}@{msg.partition()}:{msg.offset()}: {exc}"
                            ) from exc
            consumer.unassign()
            result[name] = records
    finally:
        consumer.close()
    return result


def _topic_metadata(consumer: Any, topic: str, deadline: float, refused: list[str], where: str):
    """``topic``'s metadata, asked in 1 s attempts until ``deadline``; ``KafkaAccessError`` at
    the first refusal the consumer's error callback saw."""
    from confluent_kafka import KafkaException

    for _ in range(int(max(0.0, deadline - time.monotonic())) + 2):  # 1 s attempts, bounded
        try:
            return consumer.list_topics(topic, timeout=1.0)
        except KafkaException:
            consumer.poll(0)  # serves the error callback
            cause = next((c for c in refused if c), None)
            if cause:
                raise KafkaAccessError(f"Kafka at {where}: {cause}") from None
            if time.monotonic() >= deadline:
                raise
    return consumer.list_topics(topic, timeout=1.0)


#: The key that identifies a repeat of the same output record, per output (``docs/delivery.md``,
#: "Writing Kafka"): a record retried by an at-least-once sink carries the same key and value.
#: Running counts and accumulating panes repeat with the same value, so the value is part of
#: their key: a different value for the same zip or window is a new update, not a repeat. A
#: pane's timing (EARLY, ON_TIME, LATE) is part of it too: the pipeline itself may fire a window
#: twice with the same count (e.g. a LATE pane after the ON_TIME one), which is no redelivery.
DEDUP_KEYS: dict[str, Callable[[Mapping[str, Any]], Hashable]] = {
    "alerts": lambda r: r["alert_id"],
    "counts_by_zip": lambda r: (r["zip_code"], r["count"]),
    "views_hourly": lambda r: (r["property_id"], r["window_start"], r["view_count"], r["pane"]),
    "enriched": lambda r: r["event_id"],
    "high_value": lambda r: r["event_id"],
    "dead_letters": lambda r: (r["topic"], r["partition"], r["offset"]),
    "late": lambda r: (r["topic"], r["partition"], r["offset"]),
}


def deduplicate(
    outputs: Mapping[str, Iterable[Mapping[str, Any]]],
) -> tuple[dict[str, list[Mapping[str, Any]]], dict[str, int]]:
    """The outputs with every repeat dropped (first occurrence kept, by ``DEDUP_KEYS``), and the
    number of repeats dropped per output: what a consumer following ``docs/delivery.md`` sees."""
    kept: dict[str, list[Mapping[str, Any]]] = {}
    repeats: dict[str, int] = {}
    for name, records in outputs.items():
        key = DEDUP_KEYS[name]
        seen: set[Hashable] = set()
        kept[name] = []
        repeats[name] = 0
        for record in records:
            k = key(record)
            if k in seen:
                repeats[name] += 1
            else:
                seen.add(k)
                kept[name].append(record)
    return kept, repeats


@dataclass
class Judgement:
    """Outputs judged against the oracle after de-duplication.

    ``records``: output records read (repeats included), per output. ``duplicates``: repeats
    dropped, per output. ``lost``: what the oracle expects and the de-duplicated outputs lack,
    per output (a missing id or dead letter, a zip or pane whose final count is below the
    oracle's). ``diffs``: every difference left after de-duplication (``differences``): loss,
    but also a count above the oracle (a record counted twice in state) or an unexpected id.
    """

    records: dict[str, int]
    duplicates: dict[str, int]
    lost: dict[str, int]
    diffs: list[str]
    summary: Summary

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())

    @property
    def total_duplicates(self) -> int:
        return sum(self.duplicates.values())

    @property
    def total_records(self) -> int:
        return sum(self.records.values())


def losses(summary: Summary, oracle: Oracle) -> dict[str, int]:
    """Per output, how many expected keys the (de-duplicated) ``summary`` lacks or undercounts."""

    def below(got: Mapping[str, int], want: Mapping[str, int]) -> int:
        return sum(1 for k, n in want.items() if got.get(k, 0) < n)

    return {
        "counts_by_zip": below(summary.counts_by_zip, oracle.counts_by_zip),
        "views_hourly": below(summary.hourly_views, oracle.hourly_views),
        "alerts": len(set(oracle.alert_ids) - set(summary.alert_ids)),
        "high_value": len(set(oracle.high_value_event_ids) - set(summary.high_value_event_ids)),
        "enriched": len(set(oracle.listing_updated_event_ids) - set(summary.enriched_event_ids)),
        "dead_letters": max(0, oracle.dead_letters - summary.dead_letters),
        "late": max(0, oracle.late - summary.late),
    }


def judge(
    outputs: Mapping[str, Iterable[Mapping[str, Any]]],
    oracle: Oracle,
    market: MarketLookup | None = None,
    *,
    service_healthy: bool = True,
) -> Judgement:
    """De-duplicate ``outputs`` (as read by ``read_outputs``) and compare them with ``oracle``
    (and the enriched events with ``market``, see ``differences``)."""
    raw = {name: list(records) for name, records in outputs.items()}
    kept, repeats = deduplicate(raw)
    summary = summarize(kept)
    return Judgement(
        records={name: len(records) for name, records in raw.items()},
        duplicates=repeats,
        lost=losses(summary, oracle),
        diffs=differences(summary, oracle, market, service_healthy=service_healthy),
        summary=summary,
    )
