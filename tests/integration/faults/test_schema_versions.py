"""A mixed stream of writer schemas through the local schema registry (``runners.schemaregistry``,
``--schema_registry_url``): PropertyEvents written with v1 (id 1), with a compatible v2 (an added
optional field, a new id) and with an incompatible version (``price`` a string, another id), among
the catalog's poison classes.

The pipeline replays the backlog (a bounded run) reading every writer schema from the registry and
must end DONE. Then every output equals the simulator's oracle (v2 events decoded and counted as
v1: the oracle is the same as for an all-v1 log) and the dead-letter topic holds exactly the
injected records, each once with its key and value; the incompatible ones as
``IncompatibleSchemaError``.

6 000 valid records (3 000 events, 30 % of them v2), 200 incompatible events, 13 poison records.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tests.integration.faults.harness import backfill_equals_the_oracle
from tests.integration.live import backfill_argv, property_topics
from tools.simulate import SimulationSpec, generate, produce
from tools.simulate.records import PROPERTY_EVENT_INCOMPATIBLE, PROPERTY_EVENT_V2
from tools.simulate.spec import INCOMPATIBLE

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(1200)]

SUBJECT = "property.events.PropertyEvent"
RUN_TIMEOUT_S = 900
READ_TIMEOUT_S = 300.0


def register(url: str, definition: dict) -> int:
    """The registry's id for ``definition`` under the PropertyEvent subject."""
    client = SchemaRegistryClient({"url": url})
    try:
        return client.register_schema(SUBJECT, Schema(json.dumps(definition), "AVRO"))
    finally:
        client.close()


@pytest.mark.parametrize("runner", ["PrismRunner", "FlinkRunner"])
def test_compatible_v2_events_are_counted_and_incompatible_ones_dead_lettered(
    runner, request, kafka_bootstrap, expansion_service, make_topic, local_services, schema_registry
):
    started = time.monotonic()
    v2_id = register(schema_registry, PROPERTY_EVENT_V2)
    incompatible_id = register(schema_registry, PROPERTY_EVENT_INCOMPATIBLE)
    assert len({1, 2, v2_id, incompatible_id}) == 4
    spec = SimulationSpec(
        events=3_000,
        views=3_000,
        poison_per_class=1,
        v2_share=0.3,
        v2_schema_id=v2_id,
        incompatible=200,
        incompatible_schema_id=incompatible_id,
    )
    sim = generate(spec)
    ids = Counter(
        int.from_bytes(r.value[1:5], "big")
        for r in sim.records
        if r.topic == EVENTS_TOPIC and r.kind == "valid"
    )
    assert ids[v2_id] > 500 and ids[1] > 1_500, ids
    topics = property_topics(make_topic)
    actual_topic = {EVENTS_TOPIC: topics.events, VIEWS_TOPIC: topics.views}
    produce(sim.records, kafka_bootstrap, topics=actual_topic, progress=False, timeout_s=300)
    stop_ms = int(time.time() * 1000) + 1
    argv = backfill_argv(
        runner, request, topics, kafka_bootstrap, expansion_service, local_services, stop_ms
    )
    argv.append(f"--schema_registry_url={schema_registry}")
    outputs, _, run_s = backfill_equals_the_oracle(
        argv,
        sim,
        kafka_bootstrap,
        topics,
        local_services.marketdata_url,
        RUN_TIMEOUT_S,
        READ_TIMEOUT_S,
    )

    letters = outputs["dead_letters"]
    found = Counter((d["topic"], d["key"], d["value"]) for d in letters)
    injected = Counter(
        (actual_topic[r.topic], r.key, r.value) for r in sim.records if r.kind.startswith("poison:")
    )
    assert found == injected
    incompatible = [
        d
        for d in letters
        if d["value"] and d["value"][1:5] == bytes(incompatible_id.to_bytes(4, "big"))
    ]
    assert len(incompatible) == spec.incompatible
    assert {d["error_type"] for d in incompatible} == {"IncompatibleSchemaError"}
    print(
        f"SCHEMA VERSIONS {runner}: {len(sim.records)} records ({ids[1]} v1 and {ids[v2_id]} v2 "
        f"valid events, {sum(1 for r in sim.records if r.kind == INCOMPATIBLE)} incompatible, "
        f"{sum(injected.values())} dead letters), run {run_s:.0f} s, "
        f"total {time.monotonic() - started:.0f} s"
    )
