"""The state file round-trips and the Stack reads addresses from it."""

import json

import pytest

from runners._state import ProcessRecord, ServiceRecord, load_state, save_state
from runners.local import ServiceNotRunning, Stack, StackPaths


def kafka_record(ports):
    return ServiceRecord(
        name="kafka",
        processes=(
            ProcessRecord(pid=11, create_time=1.5, log="/l/kafka.log", role="node-1"),
            ProcessRecord(pid=12, create_time=1.6, log="/l/kafka-2.log", role="node-2"),
        ),
        ports=ports,
        started_at="2026-11-27T15:00:00+00:00",
        extra={"brokers": 2},
    )


def test_state_round_trips_through_the_file(tmp_path):
    path = tmp_path / "state" / "stack.json"
    rec = kafka_record({"broker-1": 9092, "controller-1": 9093})
    save_state(path, {"kafka": rec})
    assert load_state(path) == {"kafka": rec}
    raw = json.loads(path.read_text())
    assert raw["services"]["kafka"]["pid"] == 11  # flat fields for shell readers
    assert raw["services"]["kafka"]["log_path"] == "/l/kafka.log"
    assert not list(path.parent.glob(".stack.*"))  # no temp file left behind


def test_a_missing_state_file_means_nothing_runs(tmp_path):
    assert load_state(tmp_path / "none.json") == {}


def test_a_corrupt_state_file_says_how_to_recover(tmp_path):
    path = tmp_path / "stack.json"
    path.write_text("{not json")
    with pytest.raises(RuntimeError, match=r"runners\.local down"):
        load_state(path)


def test_stack_addresses_come_from_the_recorded_ports(tmp_path):
    paths = StackPaths.resolve(tmp_path)
    kafka = kafka_record({"broker-2": 19094, "controller-1": 9093, "broker-1": 19092})

    def one(name, ports):
        return ServiceRecord(name, (ProcessRecord(1, 1.0, "/l"),), ports, "t")

    save_state(
        paths.state_file,
        {
            "kafka": kafka,
            "expansion-service": one("expansion-service", {"grpc": 18097}),
            "java-workers": one("java-workers", {"grpc": 15555}),
            "flink-job-server": one("flink-job-server", {"job": 18099, "artifact": 18098}),
            "redis": one("redis", {"redis": 16379}),
            "marketdata": one("marketdata", {"http": 18700}),
        },
    )
    stack = Stack.load(tmp_path)
    assert stack.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19094"
    assert stack.kafka_brokers == 2
    assert stack.expansion_service == "localhost:18097"
    assert stack.worker_pool == "localhost:15555"
    assert stack.job_endpoint == "localhost:18099"
    assert stack.artifact_endpoint == "localhost:18098"
    assert stack.redis_url == "redis://127.0.0.1:16379/0"
    assert stack.marketdata_url == "http://127.0.0.1:18700"


def test_asking_for_a_service_that_is_not_recorded_says_how_to_start_it(tmp_path):
    stack = Stack.load(tmp_path)
    with pytest.raises(ServiceNotRunning, match=r"python -m runners.local up kafka"):
        _ = stack.bootstrap_servers


def test_a_recorded_service_whose_pid_is_gone_is_reported_dead_with_its_log(tmp_path):
    log = tmp_path / "kafka.log"
    log.write_text("line 1\nFATAL broker exploded\n")
    paths = StackPaths.resolve(tmp_path)
    dead = ServiceRecord(
        "kafka",
        # pid 1 with a wrong start time: a reused pid must not count as our broker
        (ProcessRecord(pid=1, create_time=12345.0, log=str(log), role="node-1"),),
        {"broker-1": 9092},
        "t",
    )
    save_state(paths.state_file, {"kafka": dead})
    stack = Stack.load(tmp_path)
    assert not stack.is_running("kafka")
    with pytest.raises(ServiceNotRunning, match="FATAL broker exploded"):
        stack.check_alive("kafka")
