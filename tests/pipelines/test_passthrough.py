"""The passthrough's computation without Kafka, and how its entry point completes the options."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from pipelines import passthrough
from runners.flink_event_time import flink_streaming_event_time_args
from transforms.types import KafkaRecord

STACK_ARGS = [
    "--bootstrap_servers=127.0.0.1:9092",
    '--beam_services={"sdks:java:io:expansion-service:shadowJar": "localhost:8097"}',
    "--input_topic=a",
    "--output_topic=b",
]


def record(offset: int, key: bytes | None, value: bytes | None) -> KafkaRecord:
    return KafkaRecord(key, value, "a", offset % 2, offset, 1_700_000_000_000 + offset)


def test_build_passes_key_and_value_unchanged_with_null_key_and_tombstone():
    records = [record(0, b"k0", b"v0"), record(1, None, b"v1"), record(2, b"k2", None)]
    with TestPipeline() as p:
        out = passthrough.build(p | "Records" >> beam.Create(records))
        assert_that(out, equal_to([(b"k0", b"v0"), (None, b"v1"), (b"k2", None)]))


def test_build_keeps_each_record_timestamp():
    records = [record(0, b"k0", b"v0"), record(1, b"k1", b"v1")]

    def with_timestamp(kv, ts=beam.DoFn.TimestampParam):
        return kv, int(ts.micros // 1000)

    with TestPipeline() as p:
        stamped = (
            p
            | "Records" >> beam.Create(records)
            | "Stamp" >> beam.Map(lambda r: TimestampedValue(r, r.timestamp_ms / 1000))
        )
        out = passthrough.build(stamped) | "WithTimestamp" >> beam.Map(with_timestamp)
        assert_that(
            out,
            equal_to([((b"k0", b"v0"), 1_700_000_000_000), ((b"k1", b"v1"), 1_700_000_000_001)]),
        )


def test_unbounded_run_is_streaming_and_gets_flink_checkpointing():
    options, config = passthrough.pipeline_options(
        ["--runner=FlinkRunner", "--job_endpoint=localhost:8099", *STACK_ARGS]
    )
    assert options.view_as(StandardOptions).streaming
    # Not all Python-declared options: Beam passes them on to the Flink job server as given.
    all_options = options.get_all_options(retain_unknown_options=True)
    for arg in flink_streaming_event_time_args():
        name, _, value = arg.removeprefix("--").partition("=")
        assert str(all_options[name]).lower() == (value or "true").lower(), name
    assert config.kafka.expansion_service == "localhost:8097"


def test_bounded_run_is_batch():
    options, config = passthrough.pipeline_options(
        ["--runner=FlinkRunner", "--job_endpoint=localhost:8099", "--max_records=10", *STACK_ARGS]
    )
    assert not options.view_as(StandardOptions).streaming
    assert config.kafka.max_records == 10
