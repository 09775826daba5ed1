"""Runner presets: turn ``--runner=X`` plus the running local stack into the options Beam needs.

Pipelines call ``runner_args(argv)`` once in their entry point and build ``PipelineOptions`` from
the result; they never see ports or processes. What each runner gets (flags the user gave win):

- ``PrismRunner``: ``--prism_location`` (the binary built into ``.local/bin``),
  ``--environment_type=LOOPBACK`` (Python steps run in this process) and ``--beam_services``
  pointing Beam's Kafka IO at the running Java expansion service.
- ``FlinkRunner`` / ``PortableRunner``: ``--job_endpoint`` of Beam's Flink job server,
  ``--environment_type=LOOPBACK``, ``--beam_services``, and with ``--streaming`` the flags of
  ``runners.flink_event_time.flink_streaming_event_time_args`` (checkpointing: an unbounded
  Kafka read on Flink delivers records downstream only when checkpointing is on,
  docs/flink-event-time.md)
  and a bounded restart strategy (``FLINK_RESTART_ARGS``).
- Both local runners with ``--split_python_workers`` (the property pipeline's views half in a
  worker of its own, ``pipelines/worker_groups.py``): ``--environment_type=EXTERNAL`` and
  ``--environment_config`` of the running ``python-workers`` pool instead of LOOPBACK.
- Both local runners, for a pipeline with Kafka IO: ``--kafka_poll_timeout_s=1`` (Beam's 2 s
  poll of each partition is most of the streaming latency; docs/performance.md, Latency).
- ``FlinkRunner`` / ``PortableRunner`` with ``--kafka_read=native`` (the legacy Kafka read as a
  native Flink source): ``--kafka_native_expansion_service`` of the running
  ``flink-expansion-service``, no poll timeout (the legacy read has none), and with
  ``--streaming`` checkpoints every 250 ms instead of 1 s: with this source the checkpoints are
  what end each Python stage's bundle, so their interval bounds the latency (for more CPU per
  event: every stage closes a bundle 4 times a second, idle or not). The bundle time
  stays Flink's: 50 ms bundles cost a third more CPU per event for no lower p50
  (docs/performance.md, Latency).
- ``DirectRunner`` (also Beam's default when no runner is named): it cannot execute Java
  cross-language transforms, so a Kafka pipeline runs on Prism instead, said in one log line.
- ``DataflowRunner`` and others: passed through unchanged (they run elsewhere).

The local runners also get ``--bootstrap_servers`` of the local broker when the user gave none,
and, when that broker runs secured (``runners.local up --secure``), ``--kafka_config_file`` of its
``pipeline`` user (the path of a 0600 file; the password stays in it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from runners.flink_event_time import (
    DEFAULT_CHECKPOINTING_INTERVAL_MS,
    NATIVE_READ_CHECKPOINTING_INTERVAL_MS,
    check_flink_streaming_event_time,
    flink_streaming_event_time_args,
)
from runners.versions import versions
from transforms.io.kafka import EXPANSION_SERVICE_KEY

_LOG = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
PRISM_BINARY = REPO_ROOT / ".local" / "bin" / "prism"

_PORTABLE_JOB_RUNNERS = ("FlinkRunner", "PortableRunner")
PRISM_NO_SDF_SPLIT = "--experiments=prism_disable_sdf_split"
PRISM_NO_SINGLETON = "--experiments=disable_prism_server_singleton"
# Beam runs `pip freeze` in a subprocess at every submission (~0.3 s of a run's start-up here) to
# stage the submitting environment's package list for a version-mismatch warning on the workers.
# With the environment the presets choose, the workers run this checkout's virtualenv (LOOPBACK:
# the submitting process; the stack's pool: started from it), so there is nothing to compare and
# the list is left out; with an environment the user gives (e.g. DOCKER) it is kept
# (docs/performance.md, change 25).
NO_SUBMISSION_ENV_LIST = "--experiments=disable_logging_submission_environment"
# Beam KafkaIO's SDF read polls a partition for consumer_polling_timeout (whole seconds, Beam's
# default 2) before it returns what it read, and a runner bundle holds several partitions' reads
# one after another: each record waits up to (partitions per bundle) x this in the read. 1 s is
# KafkaIO's minimum; it shortens the stateless path's latency on Flink and Prism with the same
# outputs (docs/performance.md, Latency).
KAFKA_POLL_TIMEOUT = "--kafka_poll_timeout_s=1"
#: Flink's restart strategy for a streaming job, bounded. With checkpointing on and nothing set,
#: Flink 1.19 restarts a failed job with an exponential delay forever: a permanent failure (a bad
#: record that fails a step, a missing topic) loops instead of ending FAILED with its cause.
#: Beam's Flink runner 2.62 turns these two options into Flink's fixed-delay strategy (N
#: restarts, D ms apart; ``ExecutionConfig.getRestartStrategy``), then the job fails with the
#: cause. The N restarts count over the job's whole life: a long-lived job that must survive
#: more transient failures needs a larger N, or a failure-rate strategy in the cluster's
#: configuration with these flags set to -1 (Flink's configuration then applies).
FLINK_RESTART_ARGS = ("--number_of_execution_retries=3", "--execution_retry_delay=10000")
#: A bounded (batch) run on Beam's Flink runner 2.62, which translates to Flink's DataSet API:
#: - ``PIPELINED_FORCED``: every exchange pipelined. Under Beam's default (``PIPELINED``) Flink's
#:   optimizer makes the exchanges of a flow that branches and re-joins blocking (the inputs'
#:   read-and-ingest stages re-join at the dead-letter and late-data flattens), so the stages
#:   behind them start only when the first stage has ended: with the views in a worker of their
#:   own (``--split_python_workers``) that worker idled while the events' worker ingested. The
#:   deadlock Flink guards against needs a consumer that reads its inputs in a fixed order (a
#:   join's build side, a side input's broadcast set); this project's pipelines have none (their
#:   re-joins are flattens and groupings, which read whatever input has data). A pipeline with
#:   side inputs should pass ``--execution_mode_for_batch=PIPELINED``.
#: - ``--environment_cache_millis``: a stage's SDK environment is kept this long after its last
#:   stage ends instead of being torn down at once, so a later stage of the same environment
#:   does not start (and import) a new Python worker.
#: 500 226 records, split: total 19.2 -> 16.1 s (docs/performance.md, change 24).
FLINK_BATCH_ARGS = (
    "--execution_mode_for_batch=PIPELINED_FORCED",
    "--environment_cache_millis=10000",
)
# Stack services a pipeline may ask for by name: flag -> StackAddresses field.
_SERVICE_URL_FIELDS = {"marketdata_url": "marketdata_url", "redis_url": "redis_url"}


@dataclass(frozen=True)
class StackAddresses:
    """Where the local stack's services listen (None: not running)."""

    bootstrap_servers: str | None = None
    expansion_service: str | None = None
    job_endpoint: str | None = None
    flink_expansion_service: str | None = None
    """Beam's expansion service at the Flink runner's version (``--kafka_read=native``)."""
    marketdata_url: str | None = None
    redis_url: str | None = None
    kafka_config_file: str | None = None
    """The pipeline user's client properties file when the local Kafka runs secured."""
    python_worker_pool: str | None = None
    """Beam's Python SDK worker pool (``python-workers``): host:port for EXTERNAL."""


class PresetError(RuntimeError):
    """The runner needs a service of the local stack that is not running."""


def flag_value(argv: Sequence[str], name: str) -> str | None:
    """The value of ``--name=v`` or ``--name v`` in ``argv`` (the last one wins), else None."""
    value = None
    flag = f"--{name}"
    for i, arg in enumerate(argv):
        if arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
        elif arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def has_flag(argv: Sequence[str], name: str) -> bool:
    """True when ``--name`` appears in ``argv`` (as ``--name``, ``--name=v`` or ``--name v``)."""
    flag = f"--{name}"
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


def load_stack_addresses() -> StackAddresses:
    """Addresses of the running local stack (``runners.local``); None for what does not run."""
    # The supervisor; imported lazily: only entry points need it, and it imports confluent-kafka.
    from runners import local

    stack = local.Stack.load()

    def address(service: str, prop: str) -> str | None:
        return getattr(stack, prop) if stack.is_running(service) else None

    secured = stack.is_running(local.KAFKA) and stack.kafka_secure
    return StackAddresses(
        kafka_config_file=str(stack.kafka_config_file("pipeline")) if secured else None,
        bootstrap_servers=address(local.KAFKA, "bootstrap_servers"),
        expansion_service=address(local.EXPANSION_SERVICE, "expansion_service"),
        job_endpoint=address(local.FLINK_JOB_SERVER, "job_endpoint"),
        flink_expansion_service=address(local.FLINK_EXPANSION_SERVICE, "flink_expansion_service"),
        marketdata_url=address(local.MARKETDATA, "marketdata_url"),
        redis_url=address(local.REDIS, "redis_url"),
        python_worker_pool=address(local.PYTHON_WORKERS, "python_worker_pool"),
    )


def _without_runner(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg.startswith("--runner="):
            continue
        if arg == "--runner":
            skip = i + 1 < len(argv)
            continue
        out.append(arg)
    return out


def runner_args(
    argv: Sequence[str],
    stack: StackAddresses | Callable[[], StackAddresses] = load_stack_addresses,
    uses_kafka: bool = True,
    services: Sequence[str] = (),
) -> list[str]:
    """``argv`` completed with what ``--runner`` needs to run on the local stack.

    ``stack`` gives the running services' addresses (a callable is called only when an address is
    actually needed). ``uses_kafka`` says whether the pipeline has Kafka IO (Java transforms):
    only then does a DirectRunner pipeline move to Prism. ``services`` names further services of
    the stack the pipeline talks to (``marketdata``, ``redis``): their ``--<name>_url`` is filled
    in when the user gave none and the service runs. Raises ``PresetError`` naming the command
    that starts a missing service.
    """
    argv = list(argv)
    runner = flag_value(argv, "runner") or "DirectRunner"
    short = runner.rsplit(".", 1)[-1]
    resolved: StackAddresses | None = stack if isinstance(stack, StackAddresses) else None

    def addresses() -> StackAddresses:
        nonlocal resolved
        if resolved is None:
            resolved = stack() if callable(stack) else StackAddresses()
        return resolved

    if short in ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner") and uses_kafka:
        _LOG.info(
            "%s cannot run Kafka IO (Java cross-language transforms): running on PrismRunner",
            runner,
        )
        argv = [*_without_runner(argv), "--runner=PrismRunner"]
        short = "PrismRunner"

    if short not in ("PrismRunner", *_PORTABLE_JOB_RUNNERS):
        # Dataflow and the rest run elsewhere: this machine's loopback addresses mean nothing.
        return argv

    added: list[str] = []
    if uses_kafka and not has_flag(argv, "bootstrap_servers"):
        servers = addresses().bootstrap_servers
        if servers:
            added.append(f"--bootstrap_servers={servers}")
            # A secured local broker: connect as its pipeline user (a path, not a secret).
            config_file = addresses().kafka_config_file
            if config_file and not has_flag(argv, "kafka_config_file"):
                added.append(f"--kafka_config_file={config_file}")

    for service in services:
        flag = f"{service}_url"
        if flag not in _SERVICE_URL_FIELDS:
            raise ValueError(
                f"unknown stack service {service!r}; known: {sorted(_SERVICE_URL_FIELDS)}"
            )
        if not has_flag(argv, flag):
            url = getattr(addresses(), _SERVICE_URL_FIELDS[flag])
            if url:
                added.append(f"--{flag}={url}")

    if short in ("PrismRunner", *_PORTABLE_JOB_RUNNERS):
        if not has_flag(argv, "environment_type"):
            added += _environment_args(argv, short, addresses)
            if NO_SUBMISSION_ENV_LIST not in argv:  # the workers are the stack's own
                added.append(NO_SUBMISSION_ENV_LIST)
        if uses_kafka and not has_flag(argv, "beam_services"):
            expansion = addresses().expansion_service
            if not expansion:
                raise PresetError(
                    f"{short} needs Beam's Kafka expansion service, which is not running: "
                    "start it with `python -m runners.local up`"
                )
            added.append("--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: expansion}))

    # Not with --max_records: KafkaIO reads a record count with its legacy implementation, which
    # has no poll timeout (expansion fails: "no Kafka read implementation supports every
    # configured property").
    native_read = uses_kafka and flag_value(argv, "kafka_read") == "native"
    if (
        uses_kafka
        and not native_read
        and not has_flag(argv, "kafka_poll_timeout_s")
        and not has_flag(argv, "max_records")
    ):
        added.append(KAFKA_POLL_TIMEOUT)
    if (
        native_read
        and short in _PORTABLE_JOB_RUNNERS
        and not has_flag(argv, "kafka_native_expansion_service")
    ):
        service = addresses().flink_expansion_service
        if not service:
            raise PresetError(
                "--kafka_read=native needs Beam's expansion service at the Flink runner's "
                "version, which is not running: start it with "
                "`python -m runners.local up flink-expansion-service`"
            )
        added.append(f"--kafka_native_expansion_service={service}")

    if short == "PrismRunner" and not has_flag(argv, "prism_location"):
        if not PRISM_BINARY.exists():
            raise PresetError(
                f"PrismRunner needs the Prism binary at {PRISM_BINARY}: build it with `make setup`"
            )
        added.append(f"--prism_location={PRISM_BINARY}")
    if short == "PrismRunner" and PRISM_NO_SDF_SPLIT not in argv:
        # Prism splits a slowly progressing splittable DoFn (Kafka's read) and reads the halves
        # at once; its watermark then passed records still in flight, and a stateful stage lost
        # state (running counts by zip restarted: 3 of 3 end-to-end runs wrong, exact without the
        # split). Reading each partition as one range keeps the log's order and the holds.
        added.append(PRISM_NO_SDF_SPLIT)
    if short == "PrismRunner" and PRISM_NO_SINGLETON not in argv:
        # Beam shares one Prism server per process, whatever its options, and the DirectRunner
        # then runs later pipelines of the same process on it (seen: DirectRunner tests picked up
        # Prism's extra LATE panes after an integration test had run on Prism).
        added.append(PRISM_NO_SINGLETON)

    if short in _PORTABLE_JOB_RUNNERS:
        if not has_flag(argv, "job_endpoint"):
            endpoint = addresses().job_endpoint
            if not endpoint:
                raise PresetError(
                    f"{short} needs Beam's Flink job server, which is not running: start it with "
                    "`python -m runners.local up flink-job-server`"
                )
            added.append(f"--job_endpoint={endpoint}")
        # No --parallelism: Flink's default (1 on the embedded cluster) is kept on purpose:
        # --parallelism=2 gave no gain (docs/performance.md): every Python step runs in the one
        # LOOPBACK SDK worker process, whose GIL a second subtask only competes for.
        # pipelines.launch's --profile=latency sets it (one subtask per partition read): less
        # latency for more CPU per event.
        if has_flag(argv, "streaming"):
            # What a streaming Kafka read on the Flink runner needs for its output to flow and
            # for event-time windows to be correct (runners/flink_event_time.py).
            interval_ms = (
                NATIVE_READ_CHECKPOINTING_INTERVAL_MS
                if native_read
                else DEFAULT_CHECKPOINTING_INTERVAL_MS
            )
            flink_args = (*flink_streaming_event_time_args(interval_ms), *FLINK_RESTART_ARGS)
        else:
            flink_args = FLINK_BATCH_ARGS
        for arg in flink_args:  # each unless the user gave it
            name = arg.removeprefix("--").split("=", 1)[0]
            if not has_flag(argv, name):
                added.append(arg)

    return argv + added


def _environment_args(
    argv: Sequence[str], short: str, addresses: Callable[[], StackAddresses]
) -> list[str]:
    """The Python SDK environment of a local run: LOOPBACK (the submitting process), or with
    ``--split_python_workers`` the local stack's worker pool, whose workers are processes
    (``pipelines/worker_groups.py``)."""
    if not has_flag(argv, "split_python_workers"):
        return ["--environment_type=LOOPBACK"]
    pool = addresses().python_worker_pool
    if not pool:
        raise PresetError(
            f"--split_python_workers on {short} runs the Python steps in the local stack's "
            "worker pool, which is not running: start it with "
            "`python -m runners.local up python-workers` (or give --environment_type and "
            "--environment_config yourself)"
        )
    return ["--environment_type=EXTERNAL", f"--environment_config={pool}"]


def check_runner_supports(argv: Sequence[str], uses_event_time: bool = True) -> None:
    """Refuse, before anything is submitted, a run the chosen runner would get wrong.

    A streaming run with event-time windows on Beam's Flink runner needs checkpointing and
    ``--finish_bundle_before_checkpointing`` (``runner_args`` adds both); without them it would
    emit nothing or drop records as late without a word. Raises ``ValueError`` naming the cause,
    the fix and the alternatives.
    """
    runner = (flag_value(argv, "runner") or "DirectRunner").rsplit(".", 1)[-1]
    if runner not in _PORTABLE_JOB_RUNNERS:
        return
    interval = flag_value(argv, "checkpointing_interval")
    try:
        interval_ms = int(interval) if interval is not None else None
    except ValueError:
        raise ValueError(
            f"--checkpointing_interval must be milliseconds (an integer), got {interval!r}"
        ) from None
    finish = flag_value(argv, "finish_bundle_before_checkpointing")
    check_flink_streaming_event_time(
        versions().beam_flink,
        streaming=has_flag(argv, "streaming"),
        uses_event_time=uses_event_time,
        checkpointing_interval_ms=interval_ms,
        finish_bundle_before_checkpointing=has_flag(argv, "finish_bundle_before_checkpointing")
        and (finish is None or finish.lower() not in ("false", "0")),
    )
