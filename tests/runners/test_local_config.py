"""Service resolution, port overrides, broker and topic configuration (no processes)."""

from pathlib import Path

import pytest

from runners import kafka
from runners.local import DEFAULT_SERVICES, UpOptions, resolve_services
from runners.local.cli import parse_ports
from runners.local.options import desired_ports


def test_up_without_names_starts_the_default_set_in_dependency_order():
    assert resolve_services(None) == [
        "kafka",
        "java-workers",
        "expansion-service",
        "redis",
        "marketdata",
    ]
    assert set(DEFAULT_SERVICES) == set(resolve_services([]))


def test_the_expansion_service_brings_its_worker_pool():
    assert resolve_services(["expansion-service"]) == ["java-workers", "expansion-service"]


def test_flink_is_opt_in():
    assert "flink-job-server" not in resolve_services(None)
    assert "flink-job-server" in resolve_services(None, flink=True)


def test_an_unknown_service_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="choose from"):
        resolve_services(["zookeeper"])


def test_three_brokers_get_three_broker_and_controller_ports():
    ports = desired_ports("kafka", UpOptions(brokers=3))
    assert ports == {
        "broker-1": (9092, False),
        "controller-1": (9093, False),
        "broker-2": (9094, False),
        "controller-2": (9095, False),
        "broker-3": (9096, False),
        "controller-3": (9097, False),
    }


def test_a_pinned_port_is_strict_and_zero_means_any():
    opts = UpOptions(port_overrides={"kafka": 19092, "kafka.controller-1": 0, "redis": 0})
    assert desired_ports("kafka", opts) == {"broker-1": (19092, True), "controller-1": (0, False)}
    assert desired_ports("redis", opts) == {"redis": (0, False)}
    assert desired_ports("expansion-service", opts) == {"grpc": (8097, False)}


def test_port_flags_are_parsed_and_checked():
    assert parse_ports(["kafka=0", "redis.redis=6380"]) == {"kafka": 0, "redis.redis": 6380}
    with pytest.raises(ValueError, match="SERVICE=PORT"):
        parse_ports(["kafka:9092"])
    with pytest.raises(ValueError, match="unknown service"):
        parse_ports(["zk=2181"])


def test_only_one_or_three_brokers_are_supported():
    with pytest.raises(ValueError, match="1 or 3"):
        UpOptions(brokers=2)


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_a_three_node_cluster_replicates_three_ways_with_two_in_sync():
    nodes = [kafka.KafkaNode(i, 9090 + 2 * i, 9091 + 2 * i, Path(f"/d/{i}")) for i in (1, 2, 3)]
    p = props(kafka.broker_properties(nodes[1], nodes))
    assert p["node.id"] == "2"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    assert p["default.replication.factor"] == "3"
    assert p["min.insync.replicas"] == "2"
    assert p["offsets.topic.replication.factor"] == "3"
    assert p["log.dirs"] == "/d/2"


def test_a_single_node_replicates_once():
    node = kafka.KafkaNode(1, 9092, 9093, Path("/d"))
    p = props(kafka.broker_properties(node, [node]))
    assert p["process.roles"] == "broker,controller"
    assert p["default.replication.factor"] == "1"
    assert p["min.insync.replicas"] == "1"


def test_a_proxied_node_advertises_its_second_listener_at_the_proxy():
    node = kafka.KafkaNode(1, 9092, 9093, Path("/d"), proxied_port=9200, proxy_port=9300)
    p = props(kafka.broker_properties(node, [node]))
    assert p["listeners"] == (
        "PLAINTEXT://127.0.0.1:9092,PROXIED://127.0.0.1:9200,CONTROLLER://127.0.0.1:9093"
    )
    # Clients bootstrapped at the proxy learn the proxy's address; brokers talk on PLAINTEXT.
    assert p["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092,PROXIED://127.0.0.1:9300"
    assert p["listener.security.protocol.map"] == (
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT"
    )
    assert p["inter.broker.listener.name"] == "PLAINTEXT"


def test_a_proxied_listener_is_for_the_unsecured_stack_only():
    with pytest.raises(ValueError, match="unsecured"):
        UpOptions(proxied=True, secure=True)


def test_cluster_ids_look_like_kafka_uuids():
    ids = {kafka.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_the_project_topics_match_the_contract():
    specs = {s.name: s for s in kafka.load_topics()}
    assert set(specs) == {
        "property-events",
        "property-views",
        "enriched-property-events",
        "high-value-properties",
        "properties-by-zip",
        "property-views-hourly",
        "alerts",
        "property-events-dlq",
        "property-events-late",
    }
    assert specs["property-events"].partitions == 4
    assert specs["property-views"].partitions == 4
    assert specs["properties-by-zip"].topic_config()["cleanup.policy"] == "compact"
    assert specs["property-events"].topic_config() == {
        "retention.ms": "604800000",
        "cleanup.policy": "delete",
    }


def test_a_topics_file_with_an_unknown_key_is_rejected(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[[topic]]\nname = "a"\npartitons = 3\n')
    with pytest.raises(ValueError, match="unknown keys"):
        kafka.load_topics(path)


def test_a_topic_spec_checks_its_arguments():
    with pytest.raises(ValueError, match="partitions"):
        kafka.TopicSpec("a", partitions=0)
    with pytest.raises(ValueError, match="cleanup_policy"):
        kafka.TopicSpec("a", cleanup_policy="forever")
    with pytest.raises(ValueError, match="topic name"):
        kafka.TopicSpec("bad name")


def test_an_expansion_service_pointing_at_an_old_worker_pool_is_restarted():
    from runners._state import ProcessRecord, ServiceRecord
    from runners.local.supervisor import stale_reason

    def rec(name, ports, extra=None):
        return ServiceRecord(name, (ProcessRecord(1, 1.0, "/l"),), ports, "t", extra or {})

    workers = rec("java-workers", {"grpc": 5556})
    current = rec("expansion-service", {"grpc": 8097}, {"environment": "EXTERNAL localhost:5556"})
    old = rec("expansion-service", {"grpc": 8097}, {"environment": "EXTERNAL localhost:5555"})
    state = {"java-workers": workers}
    assert stale_reason("expansion-service", current, state) == ""
    assert "localhost:5555" in stale_reason("expansion-service", old, state)


def test_each_taskmanager_gets_its_own_prometheus_reporter_port():
    ports = desired_ports("flink-cluster", UpOptions(taskmanagers=3))
    assert ports == {
        "rest": (8081, False),
        "rpc": (6123, False),
        "prom-jm": (9249, False),
        "prom-tm": (9250, False),
        "prom-tm-2": (9251, False),
        "prom-tm-3": (9252, False),
    }


@pytest.mark.parametrize("bad", [{"taskmanagers": 0}, {"taskmanagers": 9}, {"slots": 0}])
def test_taskmanagers_and_slots_are_bounded(bad):
    with pytest.raises(ValueError, match=r"--taskmanagers|--slots"):
        UpOptions(**bad)


def test_prometheus_scrapes_every_reporter_of_the_cluster_and_follows_it():
    from runners import prometheus
    from runners._state import ProcessRecord, ServiceRecord
    from runners.local.supervisor import stale_reason

    def rec(name, ports, extra=None):
        return ServiceRecord(name, (ProcessRecord(1, 1.0, "/l"),), ports, "t", extra or {})

    cluster = rec(
        "flink-cluster",
        {"rest": 8081, "rpc": 6123, "prom-tm-2": 9301, "prom-jm": 9249, "prom-tm": 9300},
    )
    state = {"flink-cluster": cluster}
    targets = prometheus.scrape_targets(state)
    assert targets == ["127.0.0.1:9249", "127.0.0.1:9300", "127.0.0.1:9301"]
    assert prometheus.scrape_targets({}) == []
    config = prometheus.config(targets)
    assert config["scrape_configs"][0]["static_configs"] == [{"targets": targets}]
    assert Path(config["rule_files"][0]).name == "alerts.rules.yml"
    current = rec("prometheus", {"http": 9090}, {"targets": targets})
    old = rec("prometheus", {"http": 9090}, {"targets": ["127.0.0.1:9250"]})
    assert stale_reason("prometheus", current, state) == ""
    assert "9250" in stale_reason("prometheus", old, state)


def test_the_relabelling_names_beam_counters_and_kafka_backlog():
    """Prometheus's own relabelling semantics (anchored RE2 regex, $n replacement), applied in
    order to the names Flink's reporter gives Beam's metrics (seen on the session cluster)."""
    import re

    from runners import prometheus

    def relabel(name: str) -> dict[str, str]:
        labels = {"__name__": name}
        for rule in prometheus.METRIC_RELABEL:
            value = ";".join(labels.get(s, "") for s in rule["source_labels"])
            match = re.fullmatch(rule["regex"], value)
            if match:
                labels[rule["target_label"]] = match.expand(rule["replacement"].replace("$", "\\"))
        return labels

    op = "flink_taskmanager_job_task_operator_"
    assert relabel(op + "KafkaIOReader_rawSize_backlogBytes_property_events_11") == {
        "__name__": "kafka_consumer_backlog_bytes",
        "topic": "property_events",
        "partition": "11",
    }
    assert relabel(op + "property_streams_dead_lettered_decode")["__name__"] == (
        "property_streams_dead_lettered_decode"
    )
    assert relabel(op + "enrichment_market_data_fallbacks")["__name__"] == (
        "enrichment_market_data_fallbacks"
    )
    # Beam's per-partition size distributions and Flink's own metrics keep their names.
    assert relabel(op + "KafkaIOReader_rawSize_property_events_3")["__name__"].startswith(op)
    assert relabel("flink_jobmanager_job_numRestarts") == {
        "__name__": "flink_jobmanager_job_numRestarts"
    }


def test_the_alert_rules_are_valid_for_prometheus():
    import shutil
    import subprocess

    from runners import prometheus

    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `make setup` (Debian's prometheus package)"
    out = subprocess.run(
        [promtool, "check", "rules", str(prometheus.RULES_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for alert in (
        "KafkaConsumerLagGrowing",
        "DeadLetterBurst",
        "DeadLetterRateHigh",
        "EnrichmentFallbackRateHigh",
        "FlinkJobRestarted",
        "EventTimeStuck",
    ):
        assert f"alert: {alert}\n" in prometheus.RULES_FILE.read_text()


def test_the_flink_expansion_service_expands_to_the_legacy_read_run_in_the_job_server(tmp_path):
    """The native Kafka read: Beam's expansion service at the runner's version, with the legacy
    read and the EMBEDDED environment; the job server's classpath carries the same Kafka IO."""
    from runners.local.flink_services import (
        LEGACY_READ_LIB,
        job_server_classpath,
        plan_flink_expansion_service,
    )
    from runners.local.stack import StackError, StackPaths

    paths = StackPaths(home=tmp_path, lib=tmp_path / "lib", bin=tmp_path / "bin")
    (paths.lib / "flink-job-server").mkdir(parents=True)
    (paths.lib / "flink-job-server" / "runner.jar").touch()
    assert job_server_classpath(paths) == f"{paths.lib}/flink-job-server/*"
    with pytest.raises(StackError, match="make setup"):
        plan_flink_expansion_service(paths, {"grpc": 8096})

    (paths.lib / "flink-job-server" / "avro-1.11.3.jar").touch()
    (paths.lib / LEGACY_READ_LIB).mkdir()
    for jar in ("beam-sdks-java-io-kafka-2.62.0.jar", "avro-1.11.4.jar", "jamm-0.4.0.jar"):
        (paths.lib / LEGACY_READ_LIB / jar).touch()
    legacy = paths.lib / LEGACY_READ_LIB
    # Only the artifacts the job server lacks; its own avro (another version) wins.
    assert job_server_classpath(paths) == (
        f"{paths.lib}/flink-job-server/*:{legacy}/beam-sdks-java-io-kafka-2.62.0.jar:"
        f"{legacy}/jamm-0.4.0.jar"
    )
    argv = plan_flink_expansion_service(paths, {"grpc": 8096}).processes[0].argv
    assert argv[argv.index("-cp") + 1] == f"{paths.lib}/flink-job-server/*:{legacy}/*"
    assert argv[argv.index("org.apache.beam.sdk.expansion.service.ExpansionService") + 1] == "8096"
    assert "--experiments=use_deprecated_read" in argv
    assert "--defaultEnvironmentType=EMBEDDED" in argv


def test_the_flink_expansion_service_is_opt_in():
    assert "flink-expansion-service" not in resolve_services(None, flink=True)
    assert resolve_services(["flink-expansion-service"]) == ["flink-expansion-service"]
