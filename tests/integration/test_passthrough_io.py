"""The Kafka IO wrappers the passthrough stands on, against the real broker, on Prism and Flink.

What the read keeps (coordinates, CreateTime as element timestamp, headers) and what the write
with headers produces, checked with a real producer and consumer.
"""

from __future__ import annotations

import json
import time
import uuid

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from apache_beam.testing.util import assert_that, equal_to
from confluent_kafka import Consumer, Producer

from runners.presets import runner_args
from tests.conftest import FlinkJobServer
from transforms.io.kafka import EXPANSION_SERVICE_KEY, ReadKafkaRecords, WriteKafkaRecords
from transforms.types import KafkaRecord

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PARTITIONS = 4
RUN_TIMEOUT_S = 300
# Event times an hour and a day in the past: CreateTime, not the read time, must come through.
BASE_MS = int(time.time() * 1000) - 86_400_000


RUNNERS = [
    pytest.param("prism", id="prism"),
    pytest.param("flink", id="flink", marks=pytest.mark.flink),
]


@pytest.fixture
def options(
    request: pytest.FixtureRequest, runner: str, kafka_bootstrap: str, expansion_service: str
) -> PipelineOptions:
    """Batch options for ``runner`` on the session's services."""
    argv = [
        f"--bootstrap_servers={kafka_bootstrap}",
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: expansion_service}),
    ]
    if runner == "prism":
        argv.append("--runner=PrismRunner")
    else:
        flink: FlinkJobServer = request.getfixturevalue("flink_job_server")
        argv += ["--runner=FlinkRunner", f"--job_endpoint={flink.job_endpoint}"]
    return PipelineOptions(runner_args(argv))


def run_to_done(pipeline: beam.Pipeline) -> None:
    result = pipeline.run()
    state = result.wait_until_finish(duration=RUN_TIMEOUT_S * 1000)
    if state != PipelineState.DONE:
        result.cancel()
        raise AssertionError(f"pipeline not DONE within {RUN_TIMEOUT_S} s: {state}")


def coordinates_and_time(record: KafkaRecord, ts=beam.DoFn.TimestampParam) -> tuple:
    """What the test checks of one read record, with its element timestamp in ms."""
    return (
        record.key,
        record.value,
        record.partition,
        record.offset,
        record.timestamp_ms,
        record.headers,
        ts.micros // 1000,
    )


@pytest.mark.parametrize("runner", RUNNERS)
def test_read_keeps_coordinates_headers_and_create_time_as_element_timestamp(
    runner, options, kafka_bootstrap, expansion_service, make_topic
):
    topic = make_topic(PARTITIONS, "in")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    expected = []
    for i in range(2 * PARTITIONS):  # two per partition: balanced for max_num_records
        partition, offset, created_ms = i % PARTITIONS, i // PARTITIONS, BASE_MS + i * 3_600_000
        key, value = f"k{i}".encode(), f"v{i}".encode()
        headers = (("trace", f"t{i}".encode()), ("empty", None))
        producer.produce(
            topic, key=key, value=value, partition=partition, timestamp=created_ms,
            headers=list(headers),
        )  # fmt: skip
        expected.append((key, value, partition, offset, created_ms, headers, created_ms))
    assert producer.flush(30) == 0

    pipeline = beam.Pipeline(options=options)
    records = pipeline | "Read" >> ReadKafkaRecords(
        kafka_bootstrap,
        [topic],
        consumer_config={"auto.offset.reset": "earliest"},
        max_num_records=len(expected),
        expansion_service=expansion_service,
    )
    checked = records | "CoordinatesAndTime" >> beam.Map(coordinates_and_time)
    assert_that(checked, equal_to(expected), label="AllRecordsWithMetadata")
    run_to_done(pipeline)


@pytest.mark.parametrize("runner", RUNNERS)
def test_write_with_headers_writes_key_value_and_headers(
    runner, options, kafka_bootstrap, expansion_service, make_topic
):
    topic = make_topic(1, "out")
    elements = [
        (b"k1", b"v1", [("trace", b"abc"), ("source", b"test")]),
        (None, b"v2", []),
    ]
    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | "Elements" >> beam.Create(elements)
        | "Write"
        >> WriteKafkaRecords(
            kafka_bootstrap, topic, with_headers=True, expansion_service=expansion_service
        )
    )
    run_to_done(pipeline)

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < len(elements) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            got.append((message.key(), message.value(), message.headers() or []))
    consumer.close()
    assert sorted(got, key=repr) == sorted(elements, key=repr)
