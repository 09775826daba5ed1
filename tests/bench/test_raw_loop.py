"""The raw loop's topology, without Kafka: fed a simulated log in partition order, its outputs
equal the simulator's oracle (so the benchmark's reference does the same work as the pipeline)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from bench.raw_loop import Topology, TopologyRules, encode_output
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate import SimulationSpec, generate
from tools.verify import differences, summarize
from transforms.codec import decode_record
from transforms.types import KafkaRecord


def _log(records):
    """The planned records as a consumer sees them: offsets in order within each partition."""
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    out = []
    for r in records:
        where = (r.topic, r.partition)
        out.append(
            KafkaRecord(r.key, r.value, r.topic, r.partition, offsets[where], r.timestamp_ms)
        )
        offsets[where] += 1
    return out


def test_topology_outputs_equal_the_oracle_on_a_simulated_log():
    sim = generate(SimulationSpec(events=800, views=3_200, bots=2, too_late=12))
    topology = Topology(EVENTS_TOPIC, VIEWS_TOPIC)
    outputs = defaultdict(list)
    for record in _log(sim.records):
        for name, out in topology.process(record):
            outputs[name].append(out)
    for name, out in topology.finish():
        outputs[name].append(out)

    assert differences(summarize(outputs), sim.oracle) == []
    assert sim.oracle.late > 0 and sim.oracle.dead_letters > 0 and sim.oracle.alert_ids


def test_every_output_encodes_and_decodes_back_with_its_key():
    sim = generate(SimulationSpec(events=200, views=400, bots=0, too_late=4))
    topology = Topology(EVENTS_TOPIC, VIEWS_TOPIC)
    seen = set()
    for record in _log(sim.records):
        for name, out in topology.process(record):
            key, value = encode_output(name, out)
            assert value[0] == 0 and key is not None
            seen.add(name)
    assert {"dead_letters", "late", "high_value", "enriched", "counts_by_zip"} <= seen
    event = next(r.payload for r in sim.records if r.kind == "valid" and r.topic == EVENTS_TOPIC)
    key, value = encode_output("high_value", event)
    assert key == event["property_id"].encode()
    assert decode_record(value, "PropertyEvent")[1] == event


def test_a_record_from_another_topic_is_refused():
    topology = Topology(EVENTS_TOPIC, VIEWS_TOPIC)
    with pytest.raises(ValueError, match="input topics"):
        topology.process(KafkaRecord(b"k", b"v", "elsewhere", 0, 0, 0))


def test_rules_refuse_a_zero_window():
    with pytest.raises(ValueError, match="window_size_s"):
        TopologyRules(window_size_s=0)
