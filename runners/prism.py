"""Beam's ``PrismRunner``, connecting to the Prism process it starts only once Prism listens.

Beam starts Prism (a Go binary) and opens its gRPC channel to it at once; the channel's first
connection attempt comes before Prism listens (~0.25 s after its start here), fails, and gRPC's
reconnect backoff then waits its initial second before trying again. So every Prism run spent
~0.85 s of its start-up waiting for a server that was already up (docs/performance.md, change 25).
This runner starts the same process with the same command line and waits for its job port to
accept a TCP connection (polled every 10 ms) before Beam opens the channel, whose first attempt
then succeeds. Everything else is Beam's ``PrismRunner``: its options (``--prism_location``,
``--experiments=disable_prism_server_singleton``, ...), its job service, its shutdown at exit.

``pipelines.launch.new_pipeline`` gives a pipeline this runner when its options name
``PrismRunner`` and no ``--job_endpoint``; the options still say ``PrismRunner``.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import tempfile

from apache_beam.options.pipeline_options import DebugOptions, PipelineOptions
from apache_beam.portability.api import beam_job_api_pb2_grpc
from apache_beam.runners.portability import job_server, prism_runner
from apache_beam.utils import subprocess_server

from runners import _procs

LISTEN_TIMEOUT_S = 60.0
"""How long to wait for Prism's job port; after it Beam's own wait takes over (and fails)."""
_POLL_S = 0.01


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_listener(
    endpoint: str, process: subprocess.Popen | None, timeout_s: float = LISTEN_TIMEOUT_S
) -> bool:
    """True once ``endpoint`` (``host:port``) accepts a TCP connection; False when ``process``
    exits first or ``timeout_s`` passes (the caller's own wait then reports the failure)."""
    host, _, port = endpoint.rpartition(":")
    try:
        _procs.wait_until(
            lambda: _accepts_connections(host, int(port)),
            what=f"Prism's job port {endpoint}",
            timeout_s=timeout_s,
            alive=None if process is None else lambda: process.poll() is None,
            interval_s=_POLL_S,
        )
    except _procs.StartupError:
        return False
    return True


class _ListeningServer(subprocess_server.SubprocessServer):
    """Beam's subprocess server whose channel is opened only after the process listens."""

    def start_process(self):
        process, endpoint = super().start_process()
        wait_for_listener(endpoint, process)
        return process, endpoint


class _PrismJobServer(prism_runner.PrismJobServer):
    """Beam's Prism job server started through ``_ListeningServer``.

    ``start`` is ``SubprocessJobServer.start`` with that one class changed (Beam 2.73)."""

    def start(self):
        if self._server is None:
            self._local_temp_root = tempfile.mkdtemp(prefix="beam-temp")
            cmd, endpoint = self.subprocess_cmd_and_endpoint()
            port = int(endpoint.split(":")[-1])
            logger = logging.getLogger(prism_runner.PrismJobServer.__name__)
            if self._log_filter is not None:
                logger.addFilter(self._log_filter)
            self._server = _ListeningServer(
                beam_job_api_pb2_grpc.JobServiceStub, cmd, port=port, logger=logger
            )
        return self._server.start()


class PrismRunner(prism_runner.PrismRunner):
    """Beam's ``PrismRunner`` whose Prism is connected to once it listens (see the module)."""

    def default_job_server(self, options: PipelineOptions):
        def new_job_server():
            return job_server.StopOnExitJobServer(_PrismJobServer(options))

        if options.view_as(DebugOptions).lookup_experiment("disable_prism_server_singleton"):
            return new_job_server()
        return prism_runner.PrismRunner.shared_handle.acquire(new_job_server)
