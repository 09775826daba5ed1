"""Flink jobs over Flink's REST API: ``python -m runners.flink jobs|savepoint|stop|cancel``.

Stop a streaming job and restart it without losing or double-counting data::

    python -m runners.flink jobs                          # find the job id
    python -m runners.flink stop JOBID --dir /tmp/sp      # savepoint, then stop; prints its path
    python -m pipelines.property --runner=FlinkRunner --consumer_group=G
        --savepoint_path=<printed path>                   # resume from it (one command line)

``stop`` is Flink's stop-with-savepoint (``POST /jobs/<id>/stop``, no drain): the savepoint is
taken and the job ends without emitting past it, so a restart from the savepoint neither loses
nor repeats records (verified on the session cluster: ``tests/integration/test_property_live.py``);
``savepoint --cancel`` is the older cancel-with-savepoint, which may emit records after the
savepoint (repeated after a restart). Restoring needs a session cluster: Beam's Flink runner 2.62
ignores ``--savepoint_path`` on the embedded Flink. See ``docs/delivery.md``.

Beam's ``result.cancel()`` on the portable Flink runner reports CANCELLED but leaves the Flink job
RUNNING; ``cancel`` here goes to Flink itself (``PATCH /jobs/<id>?mode=cancel``).

``watch`` logs the life of the jobs, one line per change, as the seed's state listener and
uncaught-exception handler did: a job appearing, each status transition (``RUNNING ->
RESTARTING``), and each restart with its count and the first line of the failure that caused it
(Flink's exception history). The same facts are metrics in Prometheus
(``flink_jobmanager_job_numRestarts``, ``flink_jobmanager_job_<status>State``; docs/operations.md).

Which Flink: ``--url`` when given; else the local stack's ``flink-cluster`` (session cluster) when
it runs; else the embedded Flink of the local ``flink-job-server``, whose per-job REST port the job
server writes to its log ("Rest endpoint listening at ...": the latest one is used). An embedded
Flink shuts down with its job, so its REST API is gone once the job is stopped or cancelled.
"""

from __future__ import annotations

from runners.flink.jobs import SubmittedJob
from runners.flink.rest import (
    EMBEDDED_REST_PATTERN,
    TERMINAL_STATES,
    FlinkRest,
    FlinkRestError,
    FlinkUnreachable,
    JobSnapshot,
    JobSummary,
    embedded_rest_url,
)
from runners.flink.watch import job_changes, watch

__all__ = [
    "EMBEDDED_REST_PATTERN",
    "TERMINAL_STATES",
    "FlinkRest",
    "FlinkRestError",
    "FlinkUnreachable",
    "JobSnapshot",
    "JobSummary",
    "SubmittedJob",
    "embedded_rest_url",
    "job_changes",
    "main",
    "watch",
]


def main(argv: list[str] | None = None) -> int:
    """``python -m runners.flink``; see ``runners.flink.cli``."""
    from runners.flink.cli import main as cli_main

    return cli_main(argv)
