"""A broker that dies while a test waits on it fails the test at once, with its last log lines.

Uses its own broker in an isolated stack home (any free port), never the session's, and kills it
for real (SIGKILL) while the test is blocked polling a topic that will never get a record.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer

from runners import local
from tests.conftest import BrokerDied, BrokerWatch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WAIT_S = 120  # what the test would wait without the watch
KILL_AFTER_S = 3.0


@pytest.fixture
def own_broker(tmp_path):
    stack = local.ensure_up(
        [local.KAFKA], home=tmp_path, port_overrides={local.KAFKA: 0}, create_topics=False
    )
    try:
        yield stack
    finally:
        local.down(home=tmp_path, say=lambda _msg: None)


def test_broker_killed_mid_wait_fails_the_wait_with_the_broker_log_tail(own_broker):
    home = own_broker.paths.home
    pid = own_broker.record(local.KAFKA).pid
    consumer = Consumer(
        {
            "bootstrap.servers": own_broker.bootstrap_servers,
            "group.id": f"watch-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(["never-written"])
    killer = threading.Timer(KILL_AFTER_S, os.kill, args=(pid, signal.SIGKILL))
    started = time.monotonic()
    try:
        with (
            pytest.raises(BrokerDied) as died,
            BrokerWatch(lambda: local.Stack.load(home).check_alive(local.KAFKA)),
        ):
            killer.start()
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                consumer.poll(0.5)
    finally:
        killer.cancel()
        consumer.close()

    assert time.monotonic() - started < KILL_AFTER_S + 15, "the wait was not cut short"
    message = str(died.value)
    assert "the Kafka broker died during the test" in message
    assert f"pid {pid}" in message
    assert "last lines of" in message and "kafka" in message
