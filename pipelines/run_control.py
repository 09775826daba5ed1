"""What a pipeline's command line does around the run: logs, signals, stopping, failing.

- **Logs** (``setup_logging``): everything goes to a file under ``.local/logs/runs/`` (full
  traces included); the console gets the same records except Beam's known shutdown noise, and of
  the ERROR records of Beam, a runner or a worker only the first, as one line (the rest, and every
  traceback, are in the file).
  The noise, dropped from the console only: the data plane's "Failed to read inputs" with a gRPC
  ``CANCELLED`` (the runner closes the data stream when a job ends: "Multiplexer hanging up") and
  any worker thread ending on such a cancelled stream; the Java gRPC warning "was garbage collected
  without being shut down" that Prism relays from the Java worker; Prism's "Bundle Failed" for the
  bundles in flight when a job is cancelled ("pipeline canceled") and Flink's
  "JobCancellationException" for a cancelled job (a run ended that way still ends with its one
  line). Once the job has finished or the command stops it (Ctrl-C, SIGTERM; ``job_ended``),
  every warning, error and worker-thread exception from Beam or the runner is noise too: the
  in-process worker's streams, clients and executors are closed under the bundles in flight, in
  many wordings (UNAVAILABLE "Stream removed", UNKNOWN "not registered in worker pool", a Redis
  client's closed socket, "cannot schedule new futures after shutdown").
- **Signals** (``signals_as_interrupt``): SIGTERM and SIGINT raise ``KeyboardInterrupt``, so
  ``kill`` stops a run as Ctrl-C does, through the same cleanup (Python's default SIGTERM kills
  the process at once: Beam's exit handlers, which stop the Prism process it started, never ran;
  Beam's own SIGINT handler stops Prism before the job is cancelled, so ``reclaim_signals``
  takes SIGINT back once the job is submitted).
- **Stopping** (``stop_job``): the job is cancelled. Prism: Beam's ``cancel()``, then Beam's exit
  handler stops the Prism process. Flink: Beam's ``cancel()`` leaves the Flink job running, so the
  job is cancelled through Flink's REST API when it runs on the local stack's job server; for
  another Flink, the message says how to find and cancel it (``python -m runners.flink``).
- **Failing** (``failure_line``): one line with the cause and what to do, for the exceptions a
  user can act on (bad option, Kafka access, a Java exception from Kafka IO or a runner).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RUN_LOG_DIR = Path(".local") / "logs" / "runs"
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Records of this logger go to the run's log file only.
FILE_ONLY = logging.getLogger("run.file_only")
_OUR_LOGGERS = ("pipelines", "transforms", "runners", "__main__")
# The loggers of the command itself (not of code running in the workers).
_COMMAND_LOGGERS = ("pipelines", "runners", "tools", "__main__")
_GC_WARNING = "was garbage collected without being shut down"
_DATA_PLANE_READ = "Failed to read inputs in the data plane"
# Prism, for each bundle in flight when the job is cancelled.
_CANCELLED_BUNDLE = re.compile(
    r"Bundle Failed\..*pipeline canceled|JobCancellationException: Job was cancelled"
)


def _is_cancelled_rpc(exc: BaseException | None) -> bool:
    """True for a gRPC call ended with CANCELLED (what a runner does to streams at job end)."""
    import grpc

    return isinstance(exc, grpc.RpcError) and getattr(exc, "code", lambda: None)() == (
        grpc.StatusCode.CANCELLED
    )


# Set once this command has asked for its job to stop (``stop_job``): from then on, what Beam's
# in-process workers report is the consequence of the cancel (streams closed under them, clients
# closed mid-bundle, executors shut down), whatever its wording.
_STOPPING = threading.Event()
# Set by ``setup_logging``: this process is a command whose console and log file we own.
_COMMAND_LOGGING = threading.Event()


def is_shutdown_noise(record: logging.LogRecord) -> bool:
    """Beam's known shutdown noise (see the module docstring)."""
    if record.name == FILE_ONLY.name:
        return True
    if _STOPPING.is_set() and record.levelno >= logging.WARNING:
        # Our transforms run inside the workers: their complaints after the stop are noise too.
        return not record.name.startswith(_COMMAND_LOGGERS)
    message = record.getMessage()
    if _GC_WARNING in message or _CANCELLED_BUNDLE.search(message):
        return True
    if message.startswith(_DATA_PLANE_READ) and record.exc_info:
        return _is_cancelled_rpc(record.exc_info[1])
    return False


class ConsoleFilter(logging.Filter):
    """The console's view of the run's records: no shutdown noise; of the ERROR records of Beam,
    a runner or a worker, only the first, as its first line, without a traceback (the log file
    has them whole; the command line ends with one line naming the cause).

    Attach to the console handler only, after the file handler: it shortens the record it lets
    through."""

    def __init__(self, log_path: Path | None = None) -> None:
        super().__init__()
        self._where = f" (details: {log_path})" if log_path else ""
        self._runner_errors = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if is_shutdown_noise(record):
            return False
        if record.levelno >= logging.ERROR and not record.name.startswith(_OUR_LOGGERS):
            self._runner_errors += 1
            if self._runner_errors > 1:
                return False
            first = record.getMessage().strip().splitlines()[0] if record.getMessage() else ""
            record.msg, record.args = f"{first[:300]}{self._where}", None
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _quiet_thread_hook(original: Any) -> Any:
    def hook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread else ""
        if _is_cancelled_rpc(args.exc_value) or _STOPPING.is_set():
            FILE_ONLY.info(
                "thread %s ended by the job's end (stream closed or job stopped)",
                name,
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            )
            return
        original(args)

    return hook


def setup_logging(name: str, *, console_level: int = logging.INFO) -> Path:
    """Log the run to ``.local/logs/runs/<name>-<time>-<pid>.log`` and, filtered, to stderr;
    returns the file's path."""
    RUN_LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = RUN_LOG_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(to_file)  # first: it sees every record whole
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.setFormatter(logging.Formatter(FORMAT))
    console.addFilter(ConsoleFilter(path))
    root.addHandler(console)
    threading.excepthook = _quiet_thread_hook(threading.excepthook)
    _COMMAND_LOGGING.set()
    return path


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


_active = False


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise ``KeyboardInterrupt`` in the main thread."""
    global _active
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, _interrupt)
    _active = True
    try:
        yield
    finally:
        _active = False
        for s, handler in previous.items():
            signal.signal(s, handler)


def reclaim_signals() -> None:
    """Inside ``signals_as_interrupt``: take SIGINT back after submission. Beam's job-server
    wrapper installs its own SIGINT handler when it starts Prism, and that handler stops Prism
    before the job is cancelled (the run then ends as a failed RPC, not an interrupt)."""
    if _active and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)


def is_flink(options: Any) -> bool:
    """True when the run goes to Flink (Beam's Flink or portable runner)."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = str(options.view_as(StandardOptions).runner or "").rsplit(".", 1)[-1]
    return runner in ("FlinkRunner", "PortableRunner")


def flink_job_of(options: Any) -> Any:
    """A ``runners.flink.SubmittedJob`` (made before submission) for a Flink run whose Flink the
    command can reach: the one of ``--flink_master=host:port`` (Beam's Flink job server submits
    there instead of to its own default, and it is the JobManager's REST address), else the local
    stack's when ``--job_endpoint`` is its job server; None otherwise."""
    from apache_beam.options.pipeline_options import FlinkRunnerOptions, PortableOptions

    if not is_flink(options):
        return None
    from runners.flink import SubmittedJob

    master = str(options.view_as(FlinkRunnerOptions).flink_master or "")
    if master and not master.startswith("["):  # not [auto], [local], [collection]
        url = master if master.startswith(("http://", "https://")) else f"http://{master}"
        return SubmittedJob(rest_url=url)
    return SubmittedJob.on_local_stack(options.view_as(PortableOptions).job_endpoint)


class FlinkFailureWatch:
    """Ends a Flink job at its first failure that no restart can heal, instead of after its
    bounded restarts (the presets' 3 x 10 s, plus the Kafka client's own timeouts: 74-117 s seen).

    A daemon thread polls the job's exception history over Flink's REST API (``GET
    /jobs/<id>/exceptions``: each failure Flink handled, restarted or not) every ``interval_s``.
    At the first failure that holds a Kafka authentication or authorization exception
    (``pipelines.kafka_access.non_retriable_cause``: a wrong password, an untrusted CA, a missing
    ACL) it cancels the job through the REST API and keeps the one-line cause in ``cause``; the
    job then ends (Beam reports it failed) and the command says that cause. Any other failure (a
    killed TaskManager or worker, a broker bounce) is left to Flink's restart strategy.

    Flink 1.19 has no per-exception restart strategy (only Flink's own non-recoverable errors
    skip restarts), hence the watch. It stops when ``stop`` is called, after a cancel, or when the
    job is over (its loop runs at most as long as the job, one REST round trip per interval).
    """

    def __init__(self, flink_job: Any, interval_s: float = 1.0) -> None:
        self._job = flink_job
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.cause: str | None = None
        self._thread = threading.Thread(target=self._watch, name="flink-failure-watch", daemon=True)

    def start(self) -> FlinkFailureWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _watch(self) -> None:
        from pipelines.kafka_access import non_retriable_cause
        from runners.flink import TERMINAL_STATES, FlinkRestError

        seen = 0
        while not self._stop.wait(self._interval_s):
            try:
                jid = self._job.locate()
                if jid is None:
                    continue
                failures = self._job.rest.failures(jid)
                for failure in failures[seen:]:
                    cause = non_retriable_cause(failure)
                    if cause is not None:
                        self.cause = f"{cause}; the Flink job was cancelled at this failure"
                        logging.getLogger(__name__).warning(
                            "cancelling Flink job %s: it failed on a Kafka refusal that no "
                            "restart heals (%s)",
                            jid,
                            failure.split(":", 1)[0],
                        )
                        self._job.cancel(60)
                        return
                seen = len(failures)
                if self._job.rest.state(jid) in TERMINAL_STATES:
                    return
            except (FlinkRestError, OSError, ValueError) as exc:
                # Not up yet or already gone (an embedded Flink ends with its job): try again.
                FILE_ONLY.info("Flink failure watch: %s", exc)


class _StderrToLogFile:
    """What Beam's in-process worker prints to ``sys.stderr`` itself (``sdk_worker._execute``
    prints each failed bundle's traceback before logging it), kept in the run's log file."""

    def write(self, text: str) -> int:
        if text.strip():
            FILE_ONLY.info("stderr after the stop: %s", text.rstrip())
        return len(text)

    def flush(self) -> None:
        pass


# The console as it was before the stop: the command's own last line goes there.
_CONSOLE: Any = None


def console() -> Any:
    """The stream for the command's own messages (stderr, even after ``stop_job``)."""
    return _CONSOLE or sys.stderr


def say(line: str) -> None:
    """One line of the command's own on its console, written at once: ``print`` writes the text
    and the newline separately, and a worker thread's log line written in between ended up glued
    to the error line (a test read the log file's name out of it)."""
    stream = console()
    stream.write(f"{line}\n")
    stream.flush()


def job_ended() -> None:
    """From now on the job is over (it finished, or this command stops it): what Beam's
    in-process worker still reports is the consequence of its end (the runner closing its
    streams, Prism exiting) and goes to the run's log file only, stderr included."""
    global _CONSOLE
    _STOPPING.set()
    if _CONSOLE is None and _COMMAND_LOGGING.is_set():  # only a command's own stderr
        _CONSOLE = sys.stderr
        sys.stderr = _StderrToLogFile()


def stop_job(result: Any, *, flink: bool, flink_job: Any, say: Any = print) -> None:
    """Cancel an interrupted run (see the module docstring); never raises."""
    job_ended()
    if flink_job is not None:
        from runners.flink import FlinkRestError

        try:
            state = flink_job.cancel(30)
            say(
                "Flink job cancelled through Flink's REST API"
                + (" (the embedded Flink ended with it)" if state == "GONE" else f": {state}")
            )
        except (FlinkRestError, OSError) as exc:
            say(f"could not cancel the Flink job ({exc})")
            flink_job = None
    if flink and flink_job is None:
        say(
            "the Flink job may still run: list it with `python -m runners.flink jobs [--url "
            "FLINK_REST_URL]`, cancel it with `python -m runners.flink cancel JOBID`"
        )
    # ValueError: Beam already closed the job service channel; other errors: the job server is
    # gone. Either way nothing is left to cancel through Beam.
    with contextlib.suppress(Exception):
        result.cancel()


# A Java exception class name (not a stack frame's "Class.method"), then its message, if any.
_JAVA_EXCEPTION = re.compile(r"(?:[a-z_$][\w$]*\.)+([A-Z][\w$]*(?:Exception|Error))(?![\w$.])")
# (pattern in the error text, what to do)
_FIXES = (
    (
        r"Could not find any partitions info|not present in metadata|UNKNOWN_TOPIC",
        "a Kafka topic does not exist: create it (python -m runners.local topics) or fix the "
        "--*_topic options",
    ),
    (
        r"org\.apache\.kafka\.common\.errors\.TimeoutException|Failed to construct kafka",
        "Kafka is not reachable at --bootstrap_servers from the Java workers: check "
        "`python -m runners.local status`",
    ),
    (
        r"UNAVAILABLE|failed to connect to all addresses|Connection refused",
        "a service the run needs is not reachable (Beam expansion service, Java workers, job "
        "server or Kafka): check `python -m runners.local status`, start it with `make up`",
    ),
)


def failure_line(exc: BaseException) -> str:
    """One line with the cause of a failed run and, where known, what to do."""
    from pipelines.kafka_access import failure_cause

    text = str(exc)
    kafka_cause = failure_cause(text)
    if kafka_cause:
        return kafka_cause
    fix = next((what for pattern, what in _FIXES if re.search(pattern, text)), None)
    java = list(_JAVA_EXCEPTION.finditer(text))
    if java:
        # The innermost cause is the last one named (wrappers and "Caused by:" chains end there).
        last = java[-1]
        detail = text[last.end() :].split("\n", 1)[0].lstrip(": \t").strip()
        cause = f"{last.group(1)}: {detail[:200]}" if detail else last.group(1)
        return f"{cause}; {fix}" if fix else cause
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{first[:300]}; {fix}" if fix else first[:300]
