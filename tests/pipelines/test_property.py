"""The whole property pipeline (``build``) on the DirectRunner, fed by a TestStream of the
simulator's log and checked against the simulator's oracle.

The TestStream replays the two topics as Kafka would: each partition in offset order, record
timestamps = CreateTime, and the watermark advanced to the minimum over partitions of the newest
timestamp read (the CreateTime policy), in bundles of records.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from pipelines.options import OptionError, PropertyConfig
from pipelines.property import build
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate import HOUR_MS, SimulationSpec, generate
from transforms.types import KafkaRecord

# The simulated span ends at the last full hour: in the past, as the validation's clock expects.
NOW_MS = int(time.time() * 1000) // HOUR_MS * HOUR_MS
SPEC = SimulationSpec(
    properties=40, users=30, events=300, views=1_000, bots=2, too_late=8, poison_per_class=1
)
BUNDLE = 200


def kafka_log(records):
    """The planned records as KafkaRecords with per-partition offsets, in log order."""
    offsets: Counter = Counter()
    log = []
    for r in records:
        where = (r.topic, r.partition)
        log.append(
            KafkaRecord(r.key, r.value, r.topic, r.partition, offsets[where], r.timestamp_ms)
        )
        offsets[where] += 1
    return log


def log_stream(log, partitions):
    """One TestStream of both topics (the DirectRunner runs one TestStream per pipeline)."""
    stream = TestStream()
    newest = {(t, p): None for t in (EVENTS_TOPIC, VIEWS_TOPIC) for p in range(partitions)}
    for start in range(0, len(log), BUNDLE):
        chunk = log[start : start + BUNDLE]
        stream.add_elements(
            [TimestampedValue(r, Timestamp(micros=r.timestamp_ms * 1000)) for r in chunk]
        )
        for r in chunk:
            newest[(r.topic, r.partition)] = max(
                newest[(r.topic, r.partition)] or 0, r.timestamp_ms
            )
        if all(v is not None for v in newest.values()):
            stream.advance_watermark_to(Timestamp(micros=min(newest.values()) * 1000))
    return stream.advance_watermark_to_infinity()


def topic_index(record, _n):
    return 0 if record.topic == EVENTS_TOPIC else 1


def topic_and_share_index(record, _n):
    """0: events; 1: views of even partitions; 2: views of odd partitions."""
    return 0 if record.topic == EVENTS_TOPIC else 1 + record.partition % 2


def last_per_key(key_fn, value_fn):
    def check(elements):
        final = defaultdict(int)
        for e in elements:
            final[key_fn(e)] = max(final[key_fn(e)], value_fn(e))
        return dict(final)

    return check


def equals_oracle(expected, reduce_fn):
    def check(actual):
        got = reduce_fn(actual)
        if got != expected:
            missing = {k: v for k, v in expected.items() if got.get(k) != v}
            extra = {k: v for k, v in got.items() if expected.get(k) != v}
            raise AssertionError(f"differs from the oracle: expected {missing}, got {extra}")

    return check


def sorted_equal(expected, what):
    def check(actual):
        if sorted(actual) != sorted(expected):
            raise AssertionError(f"{what}: expected {sorted(expected)}, got {sorted(actual)}")

    return check


def count_equal(expected, what):
    def check(actual):
        if len(actual) != expected:
            raise AssertionError(f"{what}: expected {expected}, got {len(actual)}")

    return check


@pytest.fixture(scope="module")
def simulation():
    return generate(SPEC, now_ms=NOW_MS)


@pytest.mark.parametrize("view_parts", [1, 2], ids=["views-whole", "views-in-two-parts"])
def test_pipeline_outputs_equal_the_simulators_oracle(simulation, view_parts):
    """``view_parts=2``: the views given as two parts, disjoint sets of partitions (as
    ``--split_python_workers`` deals them between two workers), ingested and keyed each on its
    own: the outputs are the same."""
    oracle = simulation.oracle
    log = kafka_log(simulation.records)
    assert SPEC.partitions >= 2  # both parts hold records
    # The pinned test runner's options (tests/conftest.py), streaming.
    options = PipelineOptions(TestPipeline().get_full_options_as_args(streaming=True))
    with TestPipeline(options=options) as p:
        log_records = p | "Log" >> log_stream(log, SPEC.partitions)
        if view_parts == 1:
            events, views = log_records | "ByTopic" >> beam.Partition(topic_index, 2)
            out = build(events, views, PropertyConfig())
        else:
            events, *parts = log_records | "ByTopicAndShare" >> beam.Partition(
                topic_and_share_index, 3
            )
            out = build(events, tuple(parts), PropertyConfig(), view_part_groups=(None, None))

        assert_that(
            out.counts_by_zip,
            equals_oracle(
                oracle.counts_by_zip, last_per_key(lambda z: z["zip_code"], lambda z: z["count"])
            ),
            label="CountsByZipMatchOracle",
        )
        assert_that(
            out.views_hourly,
            equals_oracle(
                oracle.hourly_views,
                last_per_key(
                    lambda v: f"{v['property_id']}|{v['window_start']}", lambda v: v["view_count"]
                ),
            ),
            label="HourlyViewsMatchOracle",
        )
        assert_that(
            out.alerts | "AlertIds" >> beam.Map(lambda a: a["alert_id"]),
            sorted_equal(oracle.alert_ids, "alert ids"),
            label="OneAlertPerBotWindow",
        )
        assert_that(
            out.dead_letters,
            count_equal(oracle.dead_letters, "dead letters"),
            label="EveryPoisonRecordIsADeadLetter",
        )
        assert_that(
            out.late,
            count_equal(oracle.late, "late records"),
            label="EveryTooLateRecordIsLate",
        )
        assert_that(
            out.high_value | "HighValueIds" >> beam.Map(lambda e: e.payload["event_id"]),
            sorted_equal(oracle.high_value_event_ids, "high-value event ids"),
            label="HighValueListingsMatchOracle",
        )
        assert_that(
            out.enriched
            | "EnrichedIds"
            >> beam.Map(lambda e: (e.payload["event_id"], e.payload["enrichment_status"])),
            sorted_equal(
                [(i, "FALLBACK") for i in oracle.listing_updated_event_ids], "enriched events"
            ),
            label="EveryListingUpdateIsEnrichedOrFallback",
        )


def test_fraud_window_longer_than_the_gate_window_is_refused_at_construction():
    with pytest.raises(OptionError, match="--fraud_window_s"):
        PropertyConfig(window_size_s=600, fraud_window_s=3600)
