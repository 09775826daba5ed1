"""``watch``: the life of Flink jobs as log lines, one per change (a job appearing, a status
transition, a restart with the first line of its cause), as the seed's state listener did."""

from __future__ import annotations

import time
from typing import Any

from runners.flink.rest import FlinkRest, FlinkRestError, JobSnapshot


def job_changes(before: JobSnapshot | None, now: JobSnapshot) -> list[str]:
    """The log lines of what changed from ``before`` (None: the job is new) to ``now``."""
    who = f"job {now.jid[:8]} {now.name[:40]}"
    if before is None:
        return [f"{who}: {now.state} (restarts {now.restarts})"]
    lines = []
    if now.state != before.state:
        lines.append(f"{who}: {before.state} -> {now.state}")
    if now.restarts > before.restarts:
        cause = f": {now.last_failure}" if now.last_failure else ""
        lines.append(f"{who}: restarted (restarts {now.restarts}){cause}")
    return lines


def watch(
    rest: FlinkRest,
    jid: str | None = None,
    interval_s: float = 2.0,
    duration_s: float = 3600.0,
    say: Any = print,
) -> int:
    """Poll (every ``interval_s``, for ``duration_s``) every job, or ``jid``, and ``say`` a
    timestamped line per change (``job_changes``); returns the number of lines said. A REST
    error is said once per poll and the watch goes on (a restarting JobManager answers again)."""
    seen: dict[str, JobSnapshot] = {}
    said = 0
    deadline = time.monotonic() + duration_s
    for _ in range(int(duration_s / interval_s) + 1):  # bounded in count as in time
        try:
            jids = [jid] if jid else [j.jid for j in rest.jobs()]
            for one in jids:
                now = rest.snapshot(one)
                for line in job_changes(seen.get(one), now):
                    say(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {line}")
                    said += 1
                seen[one] = now
        except FlinkRestError as exc:
            say(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} Flink REST: {exc}")
        if time.monotonic() + interval_s > deadline:
            break
        time.sleep(interval_s)
    return said
