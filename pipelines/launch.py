"""The entry point's side of a pipeline run: argv completed before the options are parsed.

``complete_argv`` takes out the launcher's own ``--profile`` (not a pipeline option), adds
``--streaming`` unless the read is bounded, applies the runner presets (``runners.presets``: what
each runner needs from the running local stack) and the profile's flags, and refuses, before
anything is submitted, what the chosen runner cannot do.

``--profile=throughput`` (the default) runs the presets as they are. ``--profile=latency`` trades
CPU for latency where the runner has such a trade: a streaming run on Flink (``FlinkRunner`` or
``PortableRunner``) reads Kafka with the native Flink source (``--kafka_read=native``, whose
preset checkpoints every 250 ms: stateless p50 ~0.2 s instead of ~2.5 s on a quiet machine, at
about twice the CPU per event at ~160 events/s; docs/performance.md, Latency) when Beam's
expansion service at the Flink runner's version is there to expand it (the local stack's
``flink-expansion-service``, or ``--kafka_native_expansion_service``). Without one, or with
``--kafka_read=sdf``, it gets ``--parallelism=N`` instead, N the number of partitions of the
topics the run reads (asked of the broker at launch), so that each Kafka read restriction has its
own subtask instead of N restrictions polling one after another in one bundle (p50 ~1.3 s
instead of ~2.7 s, at about twice the CPU per event). A ``--kafka_read`` or ``--parallelism`` the
user gives wins. Elsewhere it changes nothing and says so in one
log line: Prism has no parallelism to set (it runs a stage's pending elements as one bundle), a
bounded run is judged by its throughput, and on Dataflow the service sizes the job (autoscaling
workers); the profile is a preference, so a command shared between runners is not refused.

It is the one pipelines module that reads the local stack; ``build``/``attach`` and the options
never do, so the workers (which import the pipeline modules, not this one) need nothing of
``runners``. Pipelines import it inside their ``pipeline_options`` for that reason.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

from pipelines.kafka_access import fatal_connect_error
from pipelines.options import KafkaOptions, OptionError, is_bounded_run
from runners.presets import (
    PresetError,
    StackAddresses,
    check_runner_supports,
    flag_value,
    has_flag,
    load_stack_addresses,
    runner_args,
)

__all__ = [
    "PresetError",
    "check_flink_restart_options",
    "check_prism_restart_options",
    "complete_argv",
    "new_pipeline",
]

_LOG = logging.getLogger(__name__)

PROFILE_FLAG = "--profile"
PROFILES = ("throughput", "latency")
"""``--profile`` choices; the first is the default."""
_PORTABLE_JOB_RUNNERS = ("FlinkRunner", "PortableRunner")
_PARTITIONS_TIMEOUT_S = 30.0

#: Reads the topics a run reads from its parsed options (each pipeline knows its own).
ReadTopics = Callable[[PipelineOptions], Sequence[str]]


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """The launcher's own options (consumed by ``complete_argv``, never pipeline options), for
    ``--help``."""
    parser.add_argument(
        PROFILE_FLAG,
        choices=PROFILES,
        default=PROFILES[0],
        help="What the runner presets favour. throughput (default): the presets as they are. "
        "latency: on a streaming Flink run, --kafka_read=native (the native Flink Kafka source, "
        "checkpoints every 250 ms) when the local stack's flink-expansion-service runs or "
        "--kafka_native_expansion_service is given: stateless p50 ~0.2 s instead of ~2.5 s; "
        "otherwise --parallelism=<partitions of the input topics> (asked of the broker at "
        "launch): p50 ~1.3 s. Either costs about twice the CPU per event at ~160 events/s "
        "(docs/performance.md, Latency); a --kafka_read or --parallelism you give wins. Changes "
        "nothing on Prism, Dataflow or a bounded run (one log line says so).",
    )


def take_profile(argv: Sequence[str]) -> tuple[str, list[str]]:
    """(the ``--profile`` value, ``argv`` without it); the last one given wins, the default is
    ``throughput``. ``OptionError`` naming the flag and the choices for a bad or missing value."""
    profile, rest = PROFILES[0], []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith(PROFILE_FLAG + "="):
            profile = arg[len(PROFILE_FLAG) + 1 :]
        elif arg == PROFILE_FLAG:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise OptionError(f"{PROFILE_FLAG} needs a value: one of {', '.join(PROFILES)}")
            profile = args[i + 1]
            i += 1
        else:
            rest.append(arg)
        i += 1
    if profile not in PROFILES:
        raise OptionError(
            f"{PROFILE_FLAG}={profile!r} is not a profile: choose one of {', '.join(PROFILES)}"
        )
    return profile, rest


def complete_argv(
    argv: Sequence[str],
    *,
    services: Sequence[str] = (),
    uses_event_time: bool = True,
    read_topics: ReadTopics = lambda _options: (),
) -> list[str]:
    """``argv`` of a Kafka pipeline made ready to run: ``--profile`` taken out (a bad value fails
    here), ``--streaming`` unless the read is bounded (added before the presets, which add what a
    streaming run needs, e.g. Flink's checkpointing), then the runner presets
    (``runners.presets.runner_args``, asking for ``services`` of the local stack), then the
    profile's flags (``profile_args``; ``read_topics`` names the topics the run reads), then the
    check that the runner can do it, which fails before anything is submitted."""
    profile, argv = take_profile(argv)
    if not is_bounded_run(PipelineOptions(argv)) and "--streaming" not in argv:
        argv.append("--streaming")
    argv = profile_read_args(argv, profile)
    argv = runner_args(argv, services=services)
    argv = profile_args(argv, profile, read_topics)
    check_runner_supports(argv, uses_event_time=uses_event_time)
    check_flink_restart_options(argv)
    check_prism_restart_options(argv)
    return argv


def new_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A pipeline for ``options`` (from ``complete_argv``): on ``PrismRunner`` without
    ``--job_endpoint`` its runner is ``runners.prism.PrismRunner`` (Beam's, connecting to its Prism
    once Prism listens instead of after gRPC's first reconnect backoff: ~0.85 s less start-up per
    run); on any other runner Beam's runner named by the options."""
    runner = str(options.view_as(StandardOptions).runner or "").rsplit(".", 1)[-1]
    if runner == "PrismRunner" and not options.view_as(PortableOptions).job_endpoint:
        from runners.prism import PrismRunner

        return beam.Pipeline(runner=PrismRunner(), options=options)
    return beam.Pipeline(options=options)


def _streaming_flink(argv: Sequence[str]) -> bool:
    runner = (flag_value(argv, "runner") or "").rsplit(".", 1)[-1]
    return runner in _PORTABLE_JOB_RUNNERS and has_flag(argv, "streaming")


def profile_read_args(
    argv: Sequence[str],
    profile: str,
    stack: Callable[[], StackAddresses] = load_stack_addresses,
) -> list[str]:
    """``argv`` before the runner presets, with the Kafka read ``profile`` chooses.

    ``latency`` on a streaming Flink run where the user chose neither ``--kafka_read`` nor
    ``--parallelism``: ``--kafka_read=native`` when its expansion service is given
    (``--kafka_native_expansion_service``) or runs in the local stack (``stack()``); the presets
    then add its 250 ms checkpoints and its service. Otherwise ``argv`` unchanged, and
    ``profile_args`` sets ``--parallelism`` after the presets (one log line says how to get the
    native read)."""
    argv = list(argv)
    if (
        profile != "latency"
        or not _streaming_flink(argv)
        or has_flag(argv, "kafka_read")
        or has_flag(argv, "parallelism")
    ):
        return argv
    if has_flag(argv, "kafka_native_expansion_service") or stack().flink_expansion_service:
        _LOG.info(
            "%s=%s: --kafka_read=native (the native Flink Kafka source, checkpoints every 250 ms)",
            PROFILE_FLAG,
            profile,
        )
        return [*argv, "--kafka_read=native"]
    _LOG.info(
        "%s=%s: one subtask per partition read instead of the native Kafka read (p50 ~0.2 s "
        "instead of ~1.3 s), whose expansion service is not running: start it with "
        "`python -m runners.local up flink-expansion-service`",
        PROFILE_FLAG,
        profile,
    )
    return argv


def profile_args(argv: Sequence[str], profile: str, read_topics: ReadTopics) -> list[str]:
    """``argv`` (runner presets applied) with what ``profile`` adds: see the module docstring.

    For ``latency`` on a streaming Flink run without ``--parallelism`` that does not read with the
    native Flink source (``profile_read_args``), the partitions of
    ``read_topics(options)`` are counted on ``--bootstrap_servers`` as the run's user
    (``--kafka_config_file``); ``OptionError`` when the broker cannot say (naming the way out:
    give ``--parallelism``)."""
    argv = list(argv)
    if profile == "throughput":
        return argv
    runner = (flag_value(argv, "runner") or "DirectRunner").rsplit(".", 1)[-1]
    if runner not in _PORTABLE_JOB_RUNNERS:
        why = (
            "the Dataflow service sizes the job itself"
            if "Dataflow" in runner
            else "Prism runs a stage's pending elements as one bundle: it has no parallelism"
            if runner == "PrismRunner"
            else "this runner has no latency preset"
        )
        _LOG.warning("%s=%s changes nothing on %s: %s", PROFILE_FLAG, profile, runner, why)
        return argv
    if not has_flag(argv, "streaming"):
        _LOG.warning(
            "%s=%s changes nothing on a bounded run (it ends by itself; its cost is its "
            "throughput)",
            PROFILE_FLAG,
            profile,
        )
        return argv
    if has_flag(argv, "parallelism"):
        given = flag_value(argv, "parallelism")
        _LOG.info("%s=%s: --parallelism=%s as given", PROFILE_FLAG, profile, given)
        return argv
    if flag_value(argv, "kafka_read") == "native":
        # Records flow as they arrive; more subtasks would only add per-checkpoint work.
        return argv
    options = PipelineOptions(argv)
    kafka = options.view_as(KafkaOptions)
    topics = list(read_topics(options))
    if not kafka.bootstrap_servers or not topics:
        # Nothing to count: the options check names the missing flag next.
        return argv
    partitions = count_partitions(kafka.bootstrap_servers, topics, kafka.kafka_config_file)
    _LOG.info(
        "%s=%s: --parallelism=%d (the partitions of %s: one Kafka read per subtask)",
        PROFILE_FLAG,
        profile,
        partitions,
        ", ".join(topics),
    )
    return [*argv, f"--parallelism={partitions}"]


def count_partitions(
    bootstrap_servers: str,
    topics: Sequence[str],
    config_file: str | None = None,
    timeout_s: float = _PARTITIONS_TIMEOUT_S,
) -> int:
    """The total number of partitions of ``topics``, from the broker's metadata, connecting as the
    user of ``config_file`` (a client properties file, mapped to librdkafka) when given.
    ``OptionError`` for a missing topic, a refused connection or no answer within ``timeout_s``.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from transforms.io.client_config import (
        ClientConfigError,
        librdkafka_config,
        load_client_security,
    )

    try:
        security = librdkafka_config(load_client_security(config_file)) if config_file else {}
    except ClientConfigError as exc:
        raise OptionError(f"--kafka_config_file: {exc}") from None
    fatal: list[str] = []

    def on_error(err) -> None:
        if (refusal := fatal_connect_error(err)) is not None:
            fatal.append(refusal)

    admin = AdminClient(
        {"bootstrap.servers": bootstrap_servers, "log_level": 0, "error_cb": on_error, **security}
    )
    way_out = f"or give --parallelism yourself instead of {PROFILE_FLAG}=latency"
    deadline = time.monotonic() + timeout_s
    total = 0
    for topic in topics:
        while True:  # short steps: an authentication or TLS failure ends the wait at once
            admin.poll(0.1)  # serves error_cb
            step = max(0.1, min(2.0, deadline - time.monotonic()))
            try:
                metadata = admin.list_topics(topic, timeout=step)
                break
            except KafkaException as exc:
                admin.poll(0.1)
                if fatal or time.monotonic() >= deadline:
                    raise OptionError(
                        f"{PROFILE_FLAG}=latency counts the partitions of {topic!r} and Kafka at "
                        f"{bootstrap_servers} did not answer ({fatal[0] if fatal else exc}): "
                        f"check --bootstrap_servers and --kafka_config_file, {way_out}"
                    ) from None
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            cause = described.error if described is not None else "not listed"
            raise OptionError(
                f"{PROFILE_FLAG}=latency: topic {topic!r} has no partitions on "
                f"{bootstrap_servers} ({cause}): create it, {way_out}"
            )
        total += len(described.partitions)
    return total


def check_prism_restart_options(argv: Sequence[str]) -> None:
    """Refuse ``--commit_offsets`` on Prism before submission: committing offsets when a read is
    finalized needs stable input (``beam:requirement:pardo:stable_input:v1``), which Prism 2.73
    does not support: it rejects the job at submission ("prism runner doesn't support the
    following required features"). Seen with ``tests/integration/faults/test_prism_kill.py``.
    """
    runner = (flag_value(argv, "runner") or "").rsplit(".", 1)[-1]
    if runner == "PrismRunner" and has_flag(argv, "commit_offsets"):
        raise OptionError(
            "--commit_offsets does not work on Prism 2.73: committing offsets at finalization "
            "needs stable input (beam:requirement:pardo:stable_input:v1), which Prism rejects at "
            "submission. Drop it: a restarted Prism job then reads from --offset_reset "
            "(earliest: everything again, at least once) or from --start_read_time_ms; for "
            "restarts without replay use Flink's savepoints (docs/delivery.md)."
        )


def check_flink_restart_options(
    argv: Sequence[str], embedded_master: Callable[[str], bool] | None = None
) -> None:
    """Refuse, before submission, the restart options Beam's Flink runner 2.62 gets wrong.

    - ``--commit_offsets`` in a streaming Flink run: the read's offset-commit step needs stable
      input, whose buffered timers fire on checkpoint completion without the keyed state locked
      (``IllegalStateException: State backend must be locked``): the read task fails at every
      checkpoint and the job restarts in a loop, replaying records. Flink's checkpoints and
      savepoints hold the read positions instead.
    - ``--savepoint_path`` on an embedded Flink (job server started with ``[local]``): the runner
      applies it only when it submits to a cluster, so the job would silently start empty.
      ``embedded_master(job_endpoint)`` says whether a job server runs embedded (default: asks the
      local stack; unknown job servers are not checked).
    """
    runner = (flag_value(argv, "runner") or "").rsplit(".", 1)[-1]
    if runner not in ("FlinkRunner", "PortableRunner"):
        return
    if has_flag(argv, "streaming") and has_flag(argv, "commit_offsets"):
        raise OptionError(
            "--commit_offsets does not work in a streaming run on Beam's Flink runner 2.62: the "
            "Kafka read task fails at every checkpoint ('State backend must be locked') and "
            "restarts in a loop. Drop it: Flink's checkpoints and savepoints keep the read "
            "positions; stop with `python -m runners.flink stop JOBID` and restart with "
            "--savepoint_path (docs/delivery.md)."
        )
    if not has_flag(argv, "savepoint_path"):
        return
    master = flag_value(argv, "flink_master")
    if master in (None, "[auto]"):
        endpoint = flag_value(argv, "job_endpoint") or ""
        embedded = (embedded_master or _stack_job_server_is_embedded)(endpoint)
    else:
        embedded = master == "[local]"
    if embedded:
        raise OptionError(
            "--savepoint_path is ignored by Beam's Flink runner 2.62 on an embedded Flink "
            "([local]): the job would start with empty state. Run on a Flink session cluster: "
            "`python -m runners.local up flink-cluster flink-job-server` (the job server then "
            "submits to it), or give --flink_master=host:port of a cluster."
        )


def _stack_job_server_is_embedded(job_endpoint: str) -> bool:
    """True when ``job_endpoint`` is the local stack's Flink job server and it runs ``[local]``."""
    from runners import local

    stack = local.Stack.load()
    if not stack.is_running(local.FLINK_JOB_SERVER) or stack.job_endpoint != job_endpoint:
        return False
    return stack.record(local.FLINK_JOB_SERVER).extra.get("flink_master") == "[local]"
