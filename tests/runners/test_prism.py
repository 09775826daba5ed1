"""The Prism runner that connects once Prism listens: its wait, and Beam's job server through it."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from runners._ports import free_port
from runners.presets import PRISM_BINARY
from runners.prism import PrismRunner, wait_for_listener

WAITING = "Waiting for grpc channel to be ready"


def test_wait_for_listener_returns_once_the_port_accepts_connections():
    port = free_port()
    listener = socket.socket()

    def listen_later() -> None:
        time.sleep(0.3)
        listener.bind(("127.0.0.1", port))
        listener.listen()

    thread = threading.Thread(target=listen_later)
    thread.start()
    try:
        assert wait_for_listener(f"localhost:{port}", None, timeout_s=10)
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass  # listening when the wait returned
    finally:
        thread.join()
        listener.close()


def test_wait_for_listener_gives_up_when_the_process_exits_or_the_time_passes():
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    exited.wait()
    assert not wait_for_listener(f"localhost:{free_port()}", exited, timeout_s=10)
    started = time.monotonic()
    assert not wait_for_listener(f"localhost:{free_port()}", None, timeout_s=0.3)
    assert time.monotonic() - started < 5


def test_beams_channel_to_a_new_prism_connects_without_the_reconnect_backoff(caplog):
    """Beam's own loop logs WAITING each time its channel is not ready (0.1 s, then 1.2x longer):
    opened before Prism listens, the channel waits out gRPC's 1 s reconnect backoff (5-6 such
    lines); opened after, it is ready at its first or second look."""
    if not PRISM_BINARY.exists():
        pytest.fail(f"Prism binary missing at {PRISM_BINARY}: run `make setup` (runners.install)")
    options = PipelineOptions(
        [
            f"--prism_location={PRISM_BINARY}",
            "--experiments=disable_prism_server_singleton",
        ]
    )
    server = PrismRunner().default_job_server(options)
    with caplog.at_level(logging.DEBUG):
        server.start()
    try:
        waits = [r for r in caplog.records if WAITING in r.getMessage()]
        assert len(waits) < 3, [r.getMessage() for r in waits]
    finally:
        server.stop()
