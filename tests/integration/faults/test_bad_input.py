"""Bad input at scale: a backlog of valid records with a burst of poison records of every class,
records with neither key nor value, valid records without a key, and 1 MiB events whose enriched
record no output topic accepts (above the producer's ``max.request.size``, Kafka's default
1 048 576 bytes, which a topic's default ``max.message.bytes`` matches).

The pipeline replays the backlog (a bounded run) and must end DONE: nothing fails the job. Then:
- every output equals the simulator's oracle (no valid record lost; each oversize event counted
  by zip and dead-lettered instead of enriched);
- the dead-letter topic holds exactly the injected records: the input records at its dead
  letters' coordinates are the planned poison and oversize records, one dead letter each, with
  their original key and value (an oversize record's value is omitted: the dead letter would be
  too large itself; its message says so and where the record is), and an oversize record's dead
  letter names the output topic, the size and the limit.

The schema classes are the catalog's (an unknown schema id, a PropertyView in the events topic);
compatible and incompatible writer versions through a schema registry are
test_schema_versions.py's.

100 000 valid records (20 000 events, 80 000 views; 1 000 of them without a key), a burst of
5 000 poison records in the middle of the log, 3 oversize events: 105 216 records.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tests.integration.faults.harness import backfill_equals_the_oracle
from tests.integration.live import backfill_argv, property_topics
from tools.dlq import cli as dlq_cli
from tools.simulate import SimulationSpec, generate, produce
from tools.simulate.spec import OVERSIZE
from transforms.io.record_size import ERROR_TYPE, STAGE

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(2400)]


SPEC = SimulationSpec(
    properties=400,
    users=300,
    events=20_000,
    views=80_000,
    bots=3,
    poison_per_class=1,
    poison_burst=5_000,
    oversize=3,
    null_keys=1_000,
)
RUN_TIMEOUT_S = 2_000
READ_TIMEOUT_S = 300.0
POLL_S = 1.0


def read_log(bootstrap: str, topic: str) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of ``topic`` now, as ``(partition, offset, key, value)``; bounded by
    ``READ_TIMEOUT_S``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bad-input-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "log_level": "2",
        }
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 30)[1] for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end])
        left = {p: end for p, end in ends.items() if end}
        deadline = time.monotonic() + READ_TIMEOUT_S
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end in {READ_TIMEOUT_S:.0f} s: {left}")
            for msg in consumer.consume(1000, POLL_S):
                if msg.error():
                    continue
                p, offset = msg.partition(), msg.offset()
                yield p, offset, msg.key(), msg.value()
                if p in left and offset + 1 >= left[p]:
                    del left[p]
    finally:
        consumer.close()


@pytest.mark.parametrize("runner", ["PrismRunner", "FlinkRunner"])
def test_bad_input_at_scale_goes_to_the_dlq_exactly_and_nothing_valid_is_lost(
    runner, request, kafka_bootstrap, expansion_service, make_topic, local_services
):
    started = time.monotonic()
    sim = generate(SPEC)
    topics = property_topics(make_topic)
    produced_at = time.monotonic()
    produce(
        sim.records,
        kafka_bootstrap,
        topics={EVENTS_TOPIC: topics.events, VIEWS_TOPIC: topics.views},
        progress=False,
        timeout_s=600,
    )
    produce_s = time.monotonic() - produced_at
    stop_ms = int(time.time() * 1000) + 1
    argv = backfill_argv(
        runner, request, topics, kafka_bootstrap, expansion_service, local_services, stop_ms
    )
    outputs, summary, run_s = backfill_equals_the_oracle(
        argv,
        sim,
        kafka_bootstrap,
        topics,
        local_services.marketdata_url,
        RUN_TIMEOUT_S,
        READ_TIMEOUT_S,
    )

    # The dead letters are exactly the injected records, once each, keeping key and value.
    actual_topic = {EVENTS_TOPIC: topics.events, VIEWS_TOPIC: topics.views}
    letters = outputs["dead_letters"]
    at = Counter((d["topic"], d["partition"], d["offset"]) for d in letters)
    assert [c for c, n in at.items() if n > 1] == [], "a record dead-lettered twice"
    logs = {
        topic: {(p, o): (k, v) for p, o, k, v in read_log(kafka_bootstrap, topic)}
        for topic in actual_topic.values()
    }
    found = Counter()
    for d in letters:
        key, value = logs[d["topic"]][(d["partition"], d["offset"])]
        found[(d["topic"], key, value)] += 1
        assert d["key"] == key, d["error_message"]
        if d["stage"] == STAGE:
            assert d["error_type"] == ERROR_TYPE
            assert d["value"] is None and "omitted" in d["error_message"], d["error_message"]
            assert topics.enriched in d["error_message"], d["error_message"]
            assert "max.request.size 1048576" in d["error_message"], d["error_message"]
        else:
            assert d["value"] == value, d["error_message"]
    injected = Counter(
        (actual_topic[r.topic], r.key, r.value)
        for r in sim.records
        if r.kind.startswith("poison:") or r.kind == OVERSIZE
    )
    assert found == injected
    oversize = sum(1 for r in sim.records if r.kind == OVERSIZE)
    assert summary.dead_letters_by_stage.get(STAGE, 0) == oversize
    # Those carry no value: the dead-letter tool refuses to replay them (it would send nulls).
    out = io.StringIO()
    replay = ["replay", f"--bootstrap_servers={kafka_bootstrap}", f"--topic={topics.dlq}"]
    assert dlq_cli.main([*replay, f"--stage={STAGE}", "--dry_run"], out) == dlq_cli.EXIT_REFUSED
    valid = sim.oracle.valid_events + sim.oracle.valid_views
    print(
        f"BAD INPUT {runner}: {len(sim.records)} records ({valid} valid, "
        f"{sum(injected.values())} injected: {dict(summary.dead_letters_by_stage)}, "
        f"{sum(1 for r in sim.records if r.key is None)} without a key), "
        f"produce {produce_s:.0f} s, run {run_s:.0f} s, total {time.monotonic() - started:.0f} s"
    )
