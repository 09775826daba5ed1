"""The Kafka Streams peer's Python side without a broker: its arguments and its build cache."""

from __future__ import annotations

import json

from bench import kstreams_peer
from bench.raw_loop import TopologyRules
from schemas import CATALOG


def test_arguments_carry_every_catalog_schema_and_mark_the_latest_of_each_name():
    args = kstreams_peer.arguments(
        "127.0.0.1:9092",
        {"events": "e", "views": "v"},
        {"late": "l"},
        {("e", 0): 5, ("v", 3): 0},
        rules=TopologyRules(window_size_s=30, allowed_lateness_s=5),
        producer_extra={"linger.ms": 1},
        grace_s={"hourly": 600},
    )
    json.dumps(args)  # the peer reads it as JSON
    assert {s["id"] for s in args["schemas"]} == {e.schema_id for e in CATALOG}
    latest = {s["id"] for s in args["schemas"] if s["latest"]}
    assert latest == {CATALOG.latest(e.name).schema_id for e in CATALOG}
    assert sorted(args["stop_offsets"]) == [["e", 0, 5], ["v", 3, 0]]
    assert args["rules"]["window_size_s"] == 30 and args["rules"]["allowed_lateness_s"] == 5
    assert args["producer_extra"] == {"linger.ms": 1}
    assert args["grace_s"] == {"hourly": 600}
    assert "grace_s" not in kstreams_peer.arguments("b", {}, {}, {})  # the seed's default


def test_source_hash_changes_with_a_source_and_not_otherwise(tmp_path):
    project = tmp_path / "peer"
    (project / "src" / "main").mkdir(parents=True)
    (project / "pom.xml").write_text("<project/>")
    source = project / "src" / "main" / "A.java"
    source.write_text("class A {}")
    first = kstreams_peer.source_hash(project)
    assert kstreams_peer.source_hash(project) == first
    source.write_text("class A { int x; }")
    assert kstreams_peer.source_hash(project) != first
