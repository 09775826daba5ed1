"""run_control: Beam's shutdown noise off the console, one-line failures, SIGTERM as Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import time

import grpc
import pytest

from pipelines.run_control import (
    ConsoleFilter,
    failure_line,
    is_shutdown_noise,
    reclaim_signals,
    signals_as_interrupt,
)


class _Rpc(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def _record(name: str, level: int, msg: str, exc: BaseException | None = None):
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord(name, level, __file__, 1, msg, None, exc_info)


def test_a_cancelled_data_stream_at_job_end_is_noise_any_other_failure_is_not():
    name = "apache_beam.runners.worker.data_plane"
    msg = "Failed to read inputs in the data plane."
    assert is_shutdown_noise(_record(name, logging.ERROR, msg, _Rpc(grpc.StatusCode.CANCELLED)))
    assert not is_shutdown_noise(
        _record(name, logging.ERROR, msg, _Rpc(grpc.StatusCode.UNAVAILABLE))
    )
    assert not is_shutdown_noise(_record(name, logging.ERROR, msg, ValueError("boom")))
    gc = "[SDK] *~*~*~ Previous channel ManagedChannelImpl{logId=8} was garbage collected without"
    assert is_shutdown_noise(_record("PrismRunner", logging.ERROR, gc + " being shut down! ~*~"))
    bundle = "Bundle Failed. (error='pipeline canceled')"
    assert is_shutdown_noise(_record("PrismRunner", logging.ERROR, bundle))
    assert not is_shutdown_noise(_record("PrismRunner", logging.ERROR, "Bundle Failed. (x)"))
    cancelled = "org.apache.flink.runtime.client.JobCancellationException: Job was cancelled."
    assert is_shutdown_noise(_record("root", logging.ERROR, cancelled))


def test_the_console_shows_the_first_runner_error_as_one_line_and_ours_whole():
    console = ConsoleFilter()
    first = _record("PrismRunner", logging.ERROR, "job failed: X\n\tat a.b.C\n", ValueError("v"))
    assert console.filter(first)
    assert first.getMessage() == "job failed: X" and first.exc_info is None
    assert not console.filter(_record("root", logging.ERROR, "the same failure again"))
    ours = _record("pipelines.property", logging.ERROR, "line 1\nline 2")
    assert console.filter(ours) and ours.getMessage() == "line 1\nline 2"
    assert console.filter(_record("apache_beam.x", logging.INFO, "a\nb"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "bundle failed:org.apache.beam.sdk.util.UserCodeException: "
            "java.lang.IllegalStateException: Could not find any partitions info for topic t. "
            "Please check\n\tat org.apache.beam.Foo",
            "IllegalStateException: Could not find any partitions info for topic t. Please check;"
            " a Kafka topic does not exist",
        ),
        (
            "Caused by: org.apache.kafka.common.errors.TimeoutException: Timeout expired",
            "TimeoutException: Timeout expired; Kafka is not reachable",
        ),
        (
            "org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized",
            "Kafka denied the pipeline's user access to a topic",
        ),
        ("<_InactiveRpcError: UNAVAILABLE: failed to connect to all addresses>", "UNAVAILABLE"),
    ],
)
def test_a_failure_is_one_line_naming_the_cause_and_the_fix(text, expected):
    line = failure_line(RuntimeError(text))
    assert "\n" not in line
    assert line.startswith(expected) or (expected == "UNAVAILABLE" and "make up" in line)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_raise_keyboard_interrupt_inside_the_block_only(signum):
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt), signals_as_interrupt():
        signal.signal(signum, signal.default_int_handler)  # what Beam's job server does
        reclaim_signals()
        os.kill(os.getpid(), signum)
        for _ in range(100):  # the handler runs at the next bytecode boundary
            time.sleep(0.01)
    assert signal.getsignal(signum) is before


def test_a_flink_run_given_flink_master_is_watched_on_that_flinks_rest_api():
    """``--flink_master=host:port`` (Beam's job server submits there) is where the launcher finds
    the job; a Prism run has no Flink job."""
    import socket

    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.run_control import flink_job_of
    from runners.flink import FlinkUnreachable

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    job = flink_job_of(
        PipelineOptions(["--runner=FlinkRunner", f"--flink_master=127.0.0.1:{port}"])
    )
    with pytest.raises(FlinkUnreachable, match=f"http://127.0.0.1:{port}/jobs/overview"):
        job.locate()
    assert flink_job_of(PipelineOptions(["--runner=PrismRunner"])) is None
