"""The passthrough pipeline end to end: real broker, real Java Kafka IO, Prism and Flink.

Each test produces records with confluent-kafka into a fresh topic, runs
``pipelines.passthrough`` (bounded, or streaming then cancelled), reads the output topic back
with a real consumer and asserts the exact multiset of (key, value): nothing lost, nothing
duplicated, null keys and tombstones kept.

Bounded runs stop either by ``--max_records`` (the input is spread evenly over the partitions:
Beam splits the count per partition and would wait forever on a short one), by
``--stop_read_time_ms`` (records produced after the stop time must not come through; empty and
quiet partitions included) or by ``--backfill`` (each partition's end at submission).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from apache_beam.runners.runner import PipelineResult, PipelineState
from confluent_kafka import Consumer, Producer

from pipelines import passthrough
from runners.flink import TERMINAL_STATES, FlinkRest, embedded_rest_url
from tests.conftest import FlinkJobServer
from transforms.io.kafka import EXPANSION_SERVICE_KEY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

PARTITIONS = 4
N = 1000
BOUNDED_TIMEOUT_S = {"prism": 300, "flink": 480}
ARRIVAL_TIMEOUT_S = 300
LINGER_S = 5.0  # after the expected count arrived: long enough to see a duplicate come in

KeyValue = tuple[bytes | None, bytes | None]


def sample_records(n: int, tag: str) -> list[KeyValue]:
    """``n`` distinct records, one with a null key and one tombstone among them."""
    records: list[KeyValue] = [(f"key-{tag}-{i}".encode(), f"value-{i}".encode()) for i in range(n)]
    records[0] = (None, b"value-with-null-key")
    records[1] = (b"key-of-a-tombstone", None)
    return records


def produce(bootstrap: str, topic: str, records: Sequence[KeyValue]) -> None:
    """Writes ``records`` round-robin over the partitions (balanced) and waits for the acks."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, (key, value) in enumerate(records):
        producer.produce(topic, key=key, value=value, partition=i % PARTITIONS)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    assert left == 0, f"{left} records not acknowledged by the broker within 60 s"


def consume_exactly(
    bootstrap: str, topic: str, count: int, timeout_s: float, linger_s: float = LINGER_S
) -> list[KeyValue]:
    """Every (key, value) on ``topic`` once ``count`` arrived and ``linger_s`` passed with no more
    (or the deadline hit: then the test fails with how many came)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    got: list[KeyValue] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        settle_until: float | None = None
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None:
                assert message.error() is None, f"consumer error: {message.error()}"
                got.append((message.key(), message.value()))
            if len(got) >= count:
                settle_until = settle_until or time.monotonic() + linger_s
                if time.monotonic() >= settle_until:
                    return got
        raise AssertionError(f"{len(got)} of {count} records on {topic} after {timeout_s} s")
    finally:
        consumer.close()


def runner_argv(
    runner: str, kafka_bootstrap: str, expansion_service: str, flink: FlinkJobServer | None
) -> list[str]:
    argv = [
        f"--bootstrap_servers={kafka_bootstrap}",
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: expansion_service}),
    ]
    if runner == "prism":
        return ["--runner=PrismRunner", *argv]
    assert flink is not None
    return ["--runner=FlinkRunner", f"--job_endpoint={flink.job_endpoint}", *argv]


def wait_done(result: PipelineResult, timeout_s: float) -> None:
    """Waits for a bounded run to finish DONE; cancels it and fails the test on timeout."""
    state = result.wait_until_finish(duration=int(timeout_s * 1000))
    if state != PipelineState.DONE:
        result.cancel()
        raise AssertionError(f"the bounded run did not finish within {timeout_s} s (state {state})")


def final_state(result: PipelineResult, timeout_s: float) -> str:
    """The job's state once terminal (polled: ``wait_until_finish`` raises on CANCELLED)."""
    deadline = time.monotonic() + timeout_s
    state = result.state
    while not PipelineState.is_terminal(state) and time.monotonic() < deadline:
        time.sleep(1)
        state = result.state
    return state


def cancel_embedded_jobs(log_path: Path, log_offset: int, timeout_s: float = 60) -> None:
    """Cancels, through Flink's REST API, every running job of the embedded Flink that the job
    server logged in ``log_path`` after ``log_offset`` (Beam's ``cancel()`` reports CANCELLED but
    leaves a Flink job running: ``runners/flink/``), and waits until each is terminal."""
    rest = FlinkRest(embedded_rest_url(log_path, log_offset, wait_s=120))
    for job in rest.jobs():
        if job.state not in TERMINAL_STATES:
            rest.cancel(job.jid, wait_s=timeout_s)


RUNNERS = [
    pytest.param("prism", id="prism"),
    pytest.param("flink", id="flink", marks=pytest.mark.flink),
]


@pytest.fixture
def flink(request: pytest.FixtureRequest, runner: str) -> FlinkJobServer | None:
    return request.getfixturevalue("flink_job_server") if runner == "flink" else None


@pytest.mark.parametrize("runner", RUNNERS)
def test_bounded_passthrough_by_record_count_copies_every_record_exactly_once(
    runner, kafka_bootstrap, expansion_service, flink, make_topic
):
    source, sink = make_topic(PARTITIONS, "in"), make_topic(PARTITIONS, "out")
    records = sample_records(N, runner)
    produce(kafka_bootstrap, source, records)  # N / PARTITIONS per partition: balanced

    result = passthrough.start(
        [
            *runner_argv(runner, kafka_bootstrap, expansion_service, flink),
            f"--input_topic={source}",
            f"--output_topic={sink}",
            f"--max_records={N}",
        ]
    )
    wait_done(result, BOUNDED_TIMEOUT_S[runner])

    assert Counter(consume_exactly(kafka_bootstrap, sink, N, timeout_s=60)) == Counter(records)


def produce_to(bootstrap: str, topic: str, by_partition: dict[int, Sequence[KeyValue]]) -> None:
    """Writes each partition's records into that partition and waits for the acks."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for partition, records in by_partition.items():
        for key, value in records:
            producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(60) == 0, "records not acknowledged by the broker within 60 s"


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's high watermark (what a write to the topic would move)."""
    from confluent_kafka import TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ends-{uuid.uuid4().hex}"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


def uneven_partitions(tag: str) -> dict[int, list[KeyValue]]:
    """Partition 0 empty, 1 and 2 with records, 3 with one record: unbalanced on purpose."""
    records = sample_records(N, tag)
    return {0: [], 1: records[: N // 2], 2: records[N // 2 : N - 1], 3: records[N - 1 :]}


@pytest.mark.parametrize("runner", RUNNERS)
def test_bounded_passthrough_by_stop_time_finishes_on_empty_quiet_and_busy_partitions(
    runner, kafka_bootstrap, expansion_service, flink, make_topic
):
    """The README's backfill (``--stop_read_time_ms``): partition 0 empty, 1 quiet (its last
    record older than the stop time), 2 and 3 busy (records after the stop time too). Every
    record before the stop time comes through, none after, and nothing is written to the input."""
    source, sink = make_topic(PARTITIONS, "in"), make_topic(PARTITIONS, "out")
    before = uneven_partitions(runner)
    produce_to(kafka_bootstrap, source, before)
    time.sleep(0.01)
    stop_ms = int(time.time() * 1000)
    time.sleep(0.01)
    produce_to(kafka_bootstrap, source, {2: [(b"after-stop", b"late-2")], 3: [(None, b"late-3")]})
    ends = end_offsets(kafka_bootstrap, source)

    result = passthrough.start(
        [
            *runner_argv(runner, kafka_bootstrap, expansion_service, flink),
            f"--input_topic={source}",
            f"--output_topic={sink}",
            f"--stop_read_time_ms={stop_ms}",
        ]
    )
    wait_done(result, BOUNDED_TIMEOUT_S[runner])

    expected = Counter(r for records in before.values() for r in records)
    assert Counter(consume_exactly(kafka_bootstrap, sink, N, timeout_s=60)) == expected
    assert end_offsets(kafka_bootstrap, source) == ends  # nothing written to the input


@pytest.mark.parametrize("runner", RUNNERS)
def test_backfill_reads_every_partition_to_its_end_at_submission_and_finishes(
    runner, kafka_bootstrap, expansion_service, flink, make_topic
):
    """``--backfill``: each partition up to its end when the pipeline is built; records written
    after that (here: right after submission) are not read, and the run finishes."""
    source, sink = make_topic(PARTITIONS, "in"), make_topic(PARTITIONS, "out")
    backlog = uneven_partitions(runner)
    produce_to(kafka_bootstrap, source, backlog)

    result = passthrough.start(
        [
            *runner_argv(runner, kafka_bootstrap, expansion_service, flink),
            f"--input_topic={source}",
            f"--output_topic={sink}",
            "--backfill",
        ]
    )
    produce_to(kafka_bootstrap, source, {p: [(b"after", f"submit-{p}".encode())] for p in (0, 1)})
    wait_done(result, BOUNDED_TIMEOUT_S[runner])

    expected = Counter(r for records in backlog.values() for r in records)
    assert Counter(consume_exactly(kafka_bootstrap, sink, N, timeout_s=60)) == expected


@pytest.mark.parametrize("runner", RUNNERS)
def test_streaming_passthrough_delivers_backlog_and_live_records_then_cancels(
    runner, kafka_bootstrap, expansion_service, flink, make_topic
):
    streaming_round_trip(runner, [], kafka_bootstrap, expansion_service, flink, make_topic)


@pytest.mark.flink
@pytest.mark.parametrize("runner", ["flink"])
def test_streaming_passthrough_with_the_native_flink_kafka_source_copies_every_record_once(
    runner, kafka_bootstrap, expansion_service, flink_expansion_service, flink, make_topic
):
    """``--kafka_read=native``: KafkaIO's legacy read expanded at the Flink runner's version and
    run as a Flink source inside the job server; every record reaches the Python step and the
    output exactly once, backlog and live."""
    native = ["--kafka_read=native", f"--kafka_native_expansion_service={flink_expansion_service}"]
    streaming_round_trip(runner, native, kafka_bootstrap, expansion_service, flink, make_topic)


def streaming_round_trip(
    runner: str,
    extra_argv: list[str],
    kafka_bootstrap: str,
    expansion_service: str,
    flink: FlinkJobServer | None,
    make_topic,
) -> None:
    """A streaming passthrough of a backlog then live records: each exactly once on the output;
    the run is then cancelled and must stop."""
    source, sink = make_topic(PARTITIONS, "in"), make_topic(PARTITIONS, "out")
    records = sample_records(N, runner)
    backlog, live = records[: N // 2], records[N // 2 :]
    produce(kafka_bootstrap, source, backlog)
    log_path = flink.log_path if flink else None
    log_offset = log_path.stat().st_size if log_path and log_path.exists() else 0

    result = passthrough.start(
        [
            *runner_argv(runner, kafka_bootstrap, expansion_service, flink),
            f"--input_topic={source}",
            f"--output_topic={sink}",
            *extra_argv,
        ]
    )
    try:
        # The backlog arrives first (read from the earliest offset), then records produced live.
        consume_exactly(kafka_bootstrap, sink, len(backlog), ARRIVAL_TIMEOUT_S, linger_s=0)
        produce(kafka_bootstrap, source, live)
        got = consume_exactly(kafka_bootstrap, sink, N, ARRIVAL_TIMEOUT_S)
    finally:
        if runner == "flink" and log_path is not None:
            cancel_embedded_jobs(log_path, log_offset)
        result.cancel()

    assert Counter(got) == Counter(records)
    state = final_state(result, timeout_s=60)
    if runner == "flink":
        # Cancelled through Flink's REST API, the job server reports the job as FAILED
        # (JobCancellationException); what matters is that it stopped.
        assert PipelineState.is_terminal(state), state
    else:
        assert state == PipelineState.CANCELLED
