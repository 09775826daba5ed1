"""The entry point's side of a pipeline run: argv completed before the options are parsed.

``complete_argv`` adds ``--streaming`` unless the read is bounded, applies the runner presets
(``runners.presets``: what each runner needs from the running local stack) and refuses, before
anything is submitted, what the chosen runner cannot do. It is the one pipelines module that
reads the local stack; ``build``/``attach`` and the options never do, so the workers (which import
the pipeline modules, not this one) need nothing of ``runners``. Pipelines import it inside their
``pipeline_options`` for that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import OptionError, is_bounded_run
from runners.presets import (
    PresetError,
    check_runner_supports,
    flag_value,
    has_flag,
    runner_args,
)

__all__ = [
    "PresetError",
    "check_flink_restart_options",
    "check_prism_restart_options",
    "complete_argv",
]


def complete_argv(
    argv: Sequence[str], *, services: Sequence[str] = (), uses_event_time: bool = True
) -> list[str]:
    """``argv`` of a Kafka pipeline made ready to run: ``--streaming`` unless the read is bounded
    (added before the presets, which add what a streaming run needs, e.g. Flink's checkpointing),
    then the runner presets (``runners.presets.runner_args``, asking for ``services`` of the local
    stack), then the check that the runner can do it, which fails before anything is submitted."""
    argv = list(argv)
    if not is_bounded_run(PipelineOptions(argv)) and "--streaming" not in argv:
        argv.append("--streaming")
    argv = runner_args(argv, services=services)
    check_runner_supports(argv, uses_event_time=uses_event_time)
    check_flink_restart_options(argv)
    check_prism_restart_options(argv)
    return argv


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
