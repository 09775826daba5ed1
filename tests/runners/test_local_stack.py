"""The supervisor against real processes: a real Kafka broker in an isolated stack home.

Each test uses its own home (tmp_path) and any free ports, so it never touches the developer's
stack in .local/ nor the well-known ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid

import psutil
import pytest
from confluent_kafka import Consumer, Producer

from runners import _procs, kafka, local
from runners._ports import PortInUseError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ANY_PORT = {"kafka": 0}


def stack_pids(stack: local.Stack) -> list[int]:
    return [p.pid for rec in stack.services.values() for p in rec.processes]


def group_members(pgid: int) -> list[int]:
    out = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    return out


@pytest.fixture
def home(tmp_path):
    yield tmp_path
    # Whatever a test leaves running in its home is stopped (and must stop).
    local.down(home=tmp_path, say=lambda _m: None)


def test_up_kafka_answers_a_metadata_request_and_down_leaves_no_process(home):
    stack = local.ensure_up(["kafka"], home=home, port_overrides=ANY_PORT, create_topics=False)
    md = kafka.cluster_metadata(stack.bootstrap_servers, timeout_s=10)
    assert len(md.brokers) == 1
    pids = stack_pids(stack)
    ports = list(stack.record("kafka").ports.values())
    assert all(psutil.pid_exists(pid) for pid in pids)
    assert (home / "state" / "stack.json").exists()
    assert (home / "run" / "kafka-node-1.pid").read_text().strip() == str(pids[0])
    assert "Kafka Server started" in stack.log_tail("kafka", 400)

    result = local.down(home=home, say=lambda _m: None)

    assert result == {"kafka": "stopped"}
    for pid in pids:
        assert not _procs.is_alive(pid), f"pid {pid} survived down"
        assert group_members(pid) == [], f"process group {pid} survived down"
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == "LISTEN"}
    assert not set(ports) & listening
    assert local.Stack.load(home).services == {}
    assert not list((home / "run").glob("*.pid"))


def test_up_twice_reuses_the_running_broker_and_topics_round_trip(home):
    first = local.ensure_up(["kafka"], home=home, port_overrides=ANY_PORT)
    second = local.ensure_up(["kafka"], home=home, port_overrides=ANY_PORT)
    assert stack_pids(second) == stack_pids(first)

    # The project's topics exist as topics.toml says, and arbitrary test topics can be made.
    md = kafka.cluster_metadata(first.bootstrap_servers)
    assert len(md.topics["property-events"].partitions) == 4
    topic = f"t-{uuid.uuid4().hex[:8]}"
    actions = kafka.ensure_topics(first.bootstrap_servers, [kafka.TopicSpec(topic, partitions=3)])
    assert actions == {topic: "created"}
    again = kafka.ensure_topics(first.bootstrap_servers, [kafka.TopicSpec(topic, partitions=5)])
    assert again == {topic: "exists (partitions 3->5)"}

    producer = Producer({"bootstrap.servers": first.bootstrap_servers})
    for i in range(10):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": first.bootstrap_servers,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    got = set()
    for _ in range(60):  # bounded: at most 60 polls of 1 s
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            got.add((msg.key(), msg.value()))
        if len(got) == 10:
            break
    consumer.close()
    assert got == {(f"k{i}".encode(), f"v{i}".encode()) for i in range(10)}
    kafka.delete_topics(first.bootstrap_servers, [topic])
    assert topic not in kafka.cluster_metadata(first.bootstrap_servers).topics


def test_a_broker_that_dies_is_reported_with_its_last_log_lines_and_up_restarts_it(home):
    stack = local.ensure_up(["kafka"], home=home, port_overrides=ANY_PORT, create_topics=False)
    pid = stack.record("kafka").pid
    os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).wait(timeout=10)  # reaps it: the broker is our child here

    with pytest.raises(local.ServiceNotRunning, match=r"(?s)not running any more.*kafka"):
        local.Stack.load(home).check_alive("kafka")
    assert "DEAD" in "\n".join(local.status_lines(home))

    restarted = local.ensure_up(["kafka"], home=home, port_overrides=ANY_PORT, create_topics=False)
    assert restarted.record("kafka").pid != pid
    assert kafka.brokers_ready(restarted.bootstrap_servers, 1)


def test_a_pinned_port_in_use_fails_up_with_a_clear_message(home):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"port {port} for kafka\.broker-1 is in use"):
            local.ensure_up(["kafka"], home=home, port_overrides={"kafka": port})
    assert local.Stack.load(home).services == {}


def test_a_service_that_dies_while_starting_fails_up_with_its_log(home):
    # Storage formatted for another node (a corrupt or copied data dir): the broker refuses to
    # start and exits; `up` must say so with the broker's own words, not hang.
    data = home / "kafka" / "cluster-1" / "node-1" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text(
        "version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=7\n"
        "directory.id=AAAAAAAAAAAAAAAAAAAAAQ\n"
    )
    with pytest.raises(local.StartupError, match=r"(?s)exited while starting.*node id"):
        local.ensure_up(
            ["kafka", "redis"],
            home=home,
            port_overrides={"kafka": 0, "redis": 0},
            create_topics=False,
        )
    # Redis started in the same wave and is kept (and reported); the broker left nothing behind.
    stack = local.Stack.load(home)
    assert set(stack.services) == {"redis"}
    assert stack.is_running("redis")
    assert [p.name for p in (home / "run").glob("*.pid")] == ["redis.pid"]


def test_three_brokers_replicate_three_ways_and_accept_acks_all_writes_with_one_down(home):
    stack = local.ensure_up(["kafka"], home=home, brokers=3, port_overrides=ANY_PORT)
    assert stack.kafka_brokers == 3
    assert len(stack.bootstrap_servers.split(",")) == 3
    md = kafka.cluster_metadata(stack.bootstrap_servers)
    assert sorted(md.brokers) == [1, 2, 3]
    for part in md.topics["property-events"].partitions.values():
        assert sorted(part.replicas) == [1, 2, 3]

    node3 = stack.record("kafka").processes[2]
    os.killpg(node3.pid, signal.SIGKILL)
    with contextlib.suppress(psutil.Error):
        psutil.Process(node3.pid).wait(timeout=10)
    failures = []
    producer = Producer(
        {"bootstrap.servers": stack.bootstrap_servers, "acks": "all", "log_level": 0}
    )
    for i in range(50):
        producer.produce(
            "property-events",
            key=f"k{i}".encode(),
            value=b"v",
            on_delivery=lambda err, _msg: failures.append(err) if err else None,
        )
    assert producer.flush(60) == 0
    assert failures == []  # min.insync.replicas=2: two of three brokers still take acks=all
