"""What a streaming Flink run needs for event-time windows to be correct.

Verified on this machine (``docs/flink-event-time.md`` has the runs and numbers): with Beam's Flink
job server 2.62 (Flink 1.19, embedded) and the 2.73 Python SDK, an unbounded ``ReadFromKafka``
with the CreateTime policy (Kafka's splittable-DoFn read) feeds 5 s event-time windows that fire
with exact counts, *provided* two Flink options are set:

- ``--checkpointing_interval``: without checkpointing the Kafka read's output never reaches the
  next step, so nothing fires and nothing is said.
- ``--finish_bundle_before_checkpointing``: without it the runner finishes the in-flight bundle
  *inside* the checkpoint (``DoFnOperator.snapshotState``): the bundle's output is parked in a
  buffer that is only emitted when the next bundle starts, while the watermark the finished bundle
  releases goes downstream at once. The watermark then overtakes records, windows fire and the
  overtaken records arrive late and are dropped (seen: 46 of 99, 56 of 98, 72 of 100 counted).
  With the option the bundle is finished and its output emitted before the checkpoint barrier.

``flink_streaming_event_time_args`` gives the flags the ``FlinkRunner --streaming`` preset adds;
``check_flink_streaming_event_time`` refuses, at construction, a run that would count wrongly or
silently emit nothing. Plain functions, no Beam import.
"""

from __future__ import annotations

import re

# The Flink runner (job server) version these findings were verified with.
VERIFIED_RUNNER_VERSION = "2.62.0"
# 1 s: a window fires a few seconds after its end (docs/performance.md, Verified facts; 5 s
# checkpoints roughly double that). Lower intervals cost more checkpoint overhead for little gain.
DEFAULT_CHECKPOINTING_INTERVAL_MS = 1000
# 250 ms with the native Flink Kafka source (``--kafka_read=native``): its records leave the source
# at once and what holds them is each Python stage's bundle, which every checkpoint ends
# (``--finish_bundle_before_checkpointing``), so the interval bounds the latency (stateless p50
# ~0.6 s at 1 s, ~0.2 s at 250 ms on a quiet machine; docs/performance.md, Latency). The price is
# CPU: every Python stage closes a bundle at each checkpoint, idle or not (+25 % per event on the
# whole pipeline at ~160 events/s; 500 ms: ~+5 %). Not for the SDF read: each checkpoint waits
# for the read's poll loop, and shorter checkpoints made it slower.
NATIVE_READ_CHECKPOINTING_INTERVAL_MS = 250

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[.-].*)?$")

_ALTERNATIVES = (
    "Alternatives: PrismRunner for local streaming (event-time windows verified there); "
    "FlinkRunner without --streaming for bounded backfills (exact, event time included); "
    "a Flink job server at a Beam version with the upstream fix for apache/beam#19637 once "
    "Maven Central serves one with all its dependencies."
)


def parse_version(version: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of a Beam version such as ``2.62.0`` (suffixes ignored)."""
    match = _VERSION.match(version.strip()) if isinstance(version, str) else None
    if match is None:
        raise ValueError(
            f"runner_version must look like '2.62.0' (the Beam version of the Flink job server), "
            f"got {version!r}"
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def flink_streaming_event_time_args(
    checkpointing_interval_ms: int = DEFAULT_CHECKPOINTING_INTERVAL_MS,
) -> list[str]:
    """The Flink pipeline flags an event-time streaming run needs (see the module docstring)."""
    if isinstance(checkpointing_interval_ms, bool) or not isinstance(
        checkpointing_interval_ms, int
    ):
        raise ValueError(
            f"checkpointing_interval_ms must be an int of milliseconds, "
            f"got {checkpointing_interval_ms!r}"
        )
    if checkpointing_interval_ms <= 0:
        raise ValueError(
            f"checkpointing_interval_ms must be > 0 (e.g. {DEFAULT_CHECKPOINTING_INTERVAL_MS}), "
            f"got {checkpointing_interval_ms}"
        )
    return [
        f"--checkpointing_interval={checkpointing_interval_ms}",
        "--finish_bundle_before_checkpointing",
    ]


def check_flink_streaming_event_time(
    runner_version: str,
    streaming: bool,
    uses_event_time: bool,
    *,
    checkpointing_interval_ms: int | None = None,
    finish_bundle_before_checkpointing: bool = False,
) -> None:
    """Raise ``ValueError`` when a Flink run would not produce correct event-time results.

    Only a streaming run with event-time windows (or timers) is checked: batch runs on Flink are
    exact, and a pipeline without event time does not depend on the watermark. Such a run is
    refused when the runner is older than the verified one, when checkpointing is off
    (``checkpointing_interval_ms`` None or <= 0: nothing is delivered) or when
    ``finish_bundle_before_checkpointing`` is off (the watermark overtakes records, which are then
    dropped as late). The message names the cause, the fix and the alternatives.
    """
    version = parse_version(runner_version)
    if not streaming or not uses_event_time:
        return
    if version < parse_version(VERIFIED_RUNNER_VERSION):
        raise ValueError(
            f"Event-time windows on the Flink runner {runner_version} in streaming mode are not "
            f"verified: the Flink job server {VERIFIED_RUNNER_VERSION} is the oldest known to fire "
            f"them correctly (docs/flink-event-time.md). {_ALTERNATIVES}"
        )
    if checkpointing_interval_ms is None or checkpointing_interval_ms <= 0:
        raise ValueError(
            f"A streaming Kafka read on the Flink runner {runner_version} delivers records "
            "downstream only when checkpointing is on, so event-time windows would never fire and "
            "the job would emit nothing: pass "
            f"--checkpointing_interval={DEFAULT_CHECKPOINTING_INTERVAL_MS} (ms) and "
            f"--finish_bundle_before_checkpointing. {_ALTERNATIVES}"
        )
    if not finish_bundle_before_checkpointing:
        raise ValueError(
            f"On the Flink runner {runner_version} in streaming mode, a bundle finished inside a "
            "checkpoint lets the watermark overtake that bundle's output: windows fire early and "
            "the overtaken records are dropped as late (counts too low, nothing said). Pass "
            f"--finish_bundle_before_checkpointing. {_ALTERNATIVES}"
        )
