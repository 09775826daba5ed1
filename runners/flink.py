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

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners.cli import FullHelpParser

TERMINAL_STATES = frozenset({"CANCELED", "FAILED", "FINISHED"})
# What the job server logs when it starts an embedded Flink (one per job): its REST address.
EMBEDDED_REST_PATTERN = re.compile(r"Rest endpoint listening at (\S+?):(\d+)")


class FlinkRestError(RuntimeError):
    """Flink's REST API refused or did not answer; the message carries its reply."""


class FlinkUnreachable(FlinkRestError):
    """Nothing answers at the REST address (an embedded Flink is gone once its job ended)."""


@dataclass(frozen=True)
class JobSummary:
    jid: str
    name: str
    state: str
    start_time_ms: int
    duration_ms: int


@dataclass(frozen=True)
class JobSnapshot:
    """A job's status as ``watch`` sees it at one moment."""

    jid: str
    name: str
    state: str
    restarts: int
    last_failure: str


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


class FlinkRest:
    """A minimal client of Flink's REST API (``/jobs``, cancel, savepoints)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Flink REST url must start with http:// or https://, got {url!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self._url = url.rstrip("/")
        self._timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self._url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise FlinkRestError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise FlinkUnreachable(f"{method} {self._url}{path}: no answer ({exc})") from exc
        return json.loads(raw) if raw else None

    def jobs(self) -> list[JobSummary]:
        reply = self._call("GET", "/jobs/overview")
        return [
            JobSummary(
                jid=j["jid"],
                name=j["name"],
                state=j["state"],
                start_time_ms=int(j.get("start-time", -1)),
                duration_ms=int(j.get("duration", -1)),
            )
            for j in reply.get("jobs", [])
        ]

    def state(self, jid: str) -> str:
        return str(self._call("GET", f"/jobs/{jid}")["state"])

    def failures(self, jid: str) -> list[str]:
        """The failures of ``jid`` that Flink kept (its exception history), oldest first: each
        the exception's class and its whole stack trace (a Python step's error sits deep in the
        trace, under the runner's own exceptions)."""
        reply = self._call("GET", f"/jobs/{jid}/exceptions")
        entries = (reply.get("exceptionHistory") or {}).get("entries") or []
        return [
            f"{e.get('exceptionName', '')}: {e.get('stacktrace', '')}"
            for e in sorted(entries, key=lambda e: e.get("timestamp", 0))
        ]

    def snapshot(self, jid: str) -> JobSnapshot:
        """What ``watch`` compares: the job's status, restarts and the first line of its latest
        failure. Restarts: Flink's ``numRestarts`` while the job runs; a finished job has no
        metrics any more, so its failures in Flink's exception history count instead (each
        restart follows one failure; a FAILED job's last failure restarted nothing)."""
        job = self._call("GET", f"/jobs/{jid}")
        state = str(job["state"])
        metrics = self._call("GET", f"/jobs/{jid}/metrics?get=numRestarts") or []
        restarts = int(float(next((m["value"] for m in metrics if m["id"] == "numRestarts"), 0)))
        failures = self.failures(jid)
        restarts = max(restarts, len(failures) - (1 if state == "FAILED" else 0))
        last = failures[-1].splitlines()[0][:300] if failures else ""
        return JobSnapshot(jid, str(job.get("name", "")), state, restarts, last)

    def cancel(self, jid: str, wait_s: float = 60.0) -> str:
        """Cancel ``jid`` and wait (bounded) until Flink reports it CANCELED; returns the state
        (``GONE`` when the REST API vanished meanwhile: an embedded Flink ends with its job)."""
        self._call("PATCH", f"/jobs/{jid}?mode=cancel")
        return self._wait_state(jid, set(TERMINAL_STATES), wait_s)

    def stop(self, jid: str, target_dir: str | None = None, wait_s: float = 300.0) -> str:
        """Stop ``jid`` with a savepoint (Flink's stop-with-savepoint, no drain) and return the
        savepoint's location once the job has stopped.

        No drain: the watermark is not advanced to the end of time, so windows and timers stay
        open in the savepoint and resume on restart, instead of firing now.
        """
        self.wait_tasks_running(jid, wait_s)
        body: dict[str, Any] = {"drain": False}
        if target_dir:
            body["targetDirectory"] = target_dir
        trigger = self._call("POST", f"/jobs/{jid}/stop", body)["request-id"]
        location = self._wait_savepoint(jid, trigger, wait_s)
        self._wait_state(jid, set(TERMINAL_STATES), wait_s)
        return location

    def savepoint(
        self, jid: str, target_dir: str | None = None, cancel: bool = False, wait_s: float = 300.0
    ) -> str:
        """Trigger a savepoint of ``jid`` (optionally cancelling it) and return its location."""
        # A job is RUNNING before its tasks are; Flink refuses a savepoint until they all run.
        self.wait_tasks_running(jid, wait_s)
        body: dict[str, Any] = {"cancel-job": cancel}
        if target_dir:
            body["target-directory"] = target_dir
        trigger = self._call("POST", f"/jobs/{jid}/savepoints", body)["request-id"]
        return self._wait_savepoint(jid, trigger, wait_s)

    def _wait_savepoint(self, jid: str, trigger: str, wait_s: float) -> str:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            reply = self._call("GET", f"/jobs/{jid}/savepoints/{trigger}")
            if reply["status"]["id"] == "COMPLETED":
                op = reply.get("operation", {})
                if "failure-cause" in op:
                    cause = op["failure-cause"].get("stack-trace", "")[:2000]
                    raise FlinkRestError(f"savepoint of {jid} failed: {cause}")
                return str(op["location"])
            time.sleep(1)
        raise FlinkRestError(f"savepoint of {jid} not completed after {wait_s:.0f}s")

    def wait_job_submitted(self, since_ms: int, wait_s: float = 180.0) -> str:
        """The id of the newest job started at or after ``since_ms`` (epoch ms, 1 s of clock
        slack), once it and all its tasks run; waits (bounded), also for the REST API to answer."""
        deadline = time.monotonic() + wait_s
        seen: object = None
        while True:
            try:
                ours = [j for j in self.jobs() if j.start_time_ms >= since_ms - 1000]
                seen = [(j.jid, j.state) for j in ours]
                if ours:
                    jid = max(ours, key=lambda j: j.start_time_ms).jid
                    self.wait_tasks_running(jid, max(0.0, deadline - time.monotonic()))
                    return jid
            except FlinkRestError as exc:
                seen = str(exc)
            if time.monotonic() >= deadline:
                raise FlinkRestError(f"no job of ours running after {wait_s:.0f}s: {seen}")
            time.sleep(1)

    def wait_tasks_running(self, jid: str, wait_s: float = 120.0) -> None:
        """Wait (bounded) until every task of ``jid`` runs (finished sources count as done)."""
        deadline = time.monotonic() + wait_s
        while True:
            vertices = self._call("GET", f"/jobs/{jid}").get("vertices", [])
            states = {v["status"] for v in vertices}
            if vertices and states <= {"RUNNING", "FINISHED"} and "RUNNING" in states:
                return
            if time.monotonic() >= deadline:
                raise FlinkRestError(
                    f"tasks of job {jid} not all running after {wait_s:.0f}s: {states}"
                )
            time.sleep(0.5)

    def _wait_state(self, jid: str, states: set[str], wait_s: float) -> str:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                state = self.state(jid)
            except FlinkUnreachable:
                if states <= TERMINAL_STATES:
                    return "GONE"  # an embedded Flink shuts down once its job is terminal
                raise
            if state in states:
                return state
            if time.monotonic() >= deadline:
                raise FlinkRestError(f"job {jid} is {state} after {wait_s:.0f}s, wanted {states}")
            time.sleep(0.5)


def embedded_rest_url(log_path: Path, offset: int = 0, wait_s: float = 0.0) -> str:
    """The REST url of the latest embedded Flink that Beam's job server logged in ``log_path``
    after byte ``offset``; waits up to ``wait_s`` for it to appear (a job's Flink starts a few
    seconds after submission)."""
    deadline = time.monotonic() + wait_s
    while True:
        if log_path.exists():
            with log_path.open("rb") as log:
                log.seek(offset)
                found = EMBEDDED_REST_PATTERN.findall(log.read().decode("utf-8", "replace"))
            if found:
                host, port = found[-1]
                return f"http://{host}:{port}"
        if time.monotonic() >= deadline:
            raise FlinkRestError(
                f"no embedded Flink REST endpoint in {log_path} (after byte {offset}): is a job "
                "running on the local flink-job-server? Give --url for another Flink."
            )
        time.sleep(0.5)


class SubmittedJob:
    """A Beam job about to be submitted to the local stack's Flink, found and cancelled through
    Flink's REST API (Beam's ``cancel()`` leaves a Flink job running).

    Made *before* submission: it notes where to look (the session cluster's REST url when it
    runs, else the job server's log, which names each embedded Flink's REST port) and the time,
    so ``find`` returns the job started after it."""

    def __init__(self, stack: Any = None, *, rest_url: str | None = None) -> None:
        """On the local ``stack``'s Flink, or on the Flink whose REST API is at ``rest_url``."""
        self._log: Path | None = None
        self._offset = 0
        self._cluster_url = rest_url
        if stack is not None:
            from runners import local

            running = stack.is_running(local.FLINK_CLUSTER)
            self._cluster_url = stack.flink_rest_url if running else None
            self._log = stack.log_path(local.FLINK_JOB_SERVER)
            self._offset = self._log.stat().st_size if self._log.exists() else 0
        if self._cluster_url is None and self._log is None:
            raise ValueError("SubmittedJob needs a local stack or a Flink REST url")
        self._since_ms = int(time.time() * 1000)
        self._rest: FlinkRest | None = None
        self.jid: str | None = None

    @classmethod
    def on_local_stack(cls, job_endpoint: str | None) -> SubmittedJob | None:
        """A ``SubmittedJob`` when ``job_endpoint`` is the local stack's Flink job server, else
        None (another Flink: its jobs are not ours to find)."""
        from runners import local

        stack = local.Stack.load()
        if not stack.is_running(local.FLINK_JOB_SERVER) or stack.job_endpoint != job_endpoint:
            return None
        return cls(stack)

    def _url(self, wait_s: float) -> str:
        if self._cluster_url:
            return self._cluster_url
        assert self._log is not None
        return embedded_rest_url(self._log, self._offset, wait_s)

    def find(self, timeout_s: float = 180.0) -> str:
        """The job's id once all its tasks run (waits, bounded)."""
        self._rest = FlinkRest(self._url(timeout_s))
        self.jid = self._rest.wait_job_submitted(self._since_ms, timeout_s)
        return self.jid

    def locate(self) -> str | None:
        """The job's id as soon as Flink lists it, whatever its state (a job failing at once
        never has all its tasks running); None while Flink lists no job of ours yet. Does not
        wait; ``FlinkRestError`` when the REST API does not answer."""
        if self.jid is not None:
            return self.jid
        if self._rest is None:
            self._rest = FlinkRest(self._url(0.0))
        ours = [j for j in self._rest.jobs() if j.start_time_ms >= self._since_ms - 1000]
        if ours:
            self.jid = max(ours, key=lambda j: j.start_time_ms).jid
        return self.jid

    @property
    def rest(self) -> FlinkRest | None:
        """The REST client once ``find`` or ``locate`` reached Flink."""
        return self._rest

    def cancel(self, timeout_s: float = 60.0) -> str:
        """Cancels the job in Flink; returns its final state (``FlinkRestError`` when it cannot
        be found or cancelled within ``timeout_s``)."""
        if self.jid is None or self._rest is None:
            self.find(timeout_s)
        assert self._rest is not None and self.jid is not None
        return self._rest.cancel(self.jid, timeout_s)


def _default_url() -> str:
    from runners.local import FLINK_CLUSTER, FLINK_JOB_SERVER, Stack

    stack = Stack.load()
    if stack.is_running(FLINK_CLUSTER):
        return stack.flink_rest_url
    if stack.is_running(FLINK_JOB_SERVER):
        return embedded_rest_url(stack.log_path(FLINK_JOB_SERVER))
    stack.check_alive(FLINK_CLUSTER)  # raises, naming how to start it
    raise FlinkRestError("no Flink runs in the local stack: give --url")


def main(argv: list[str] | None = None) -> int:
    parser = FullHelpParser(
        prog="python -m runners.flink",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        help="Flink REST url (default: the local flink-cluster, else the embedded Flink of the "
        "local flink-job-server's latest job)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("jobs", help="list jobs: id, state, duration, name")
    p_sp = sub.add_parser("savepoint", help="take a savepoint; the job keeps running")
    p_sp.add_argument("jid")
    p_sp.add_argument("--dir", help="target directory (default: state.savepoints.dir)")
    p_sp.add_argument(
        "--cancel",
        action="store_true",
        help="cancel the job after the savepoint (records emitted after it are repeated by a "
        "restart from it: prefer `stop`)",
    )
    p_stop = sub.add_parser(
        "stop", help="stop the job with a savepoint (restart with --savepoint_path=<printed path>)"
    )
    p_stop.add_argument("jid")
    p_stop.add_argument("--dir", help="target directory (default: state.savepoints.dir)")
    p_cancel = sub.add_parser("cancel", help="cancel a job, no savepoint")
    p_cancel.add_argument("jid")
    p_watch = sub.add_parser(
        "watch", help="log each job's status transitions and restarts, one line per change"
    )
    p_watch.add_argument("--jid", help="only this job (default: every job)")
    p_watch.add_argument("--interval_s", type=float, default=2.0, help="poll period")
    p_watch.add_argument("--for_s", type=float, default=3600.0, help="stop after this long")
    for p in (p_sp, p_stop, p_cancel):
        p.add_argument("--wait_s", type=float, default=300.0, help="give up after this long")
    args = parser.parse_args(argv)
    try:
        client = FlinkRest(args.url or _default_url())
        if args.command == "jobs":
            for job in client.jobs():
                print(f"{job.jid}  {job.state:<10} {job.duration_ms / 1000:8.1f}s  {job.name}")
        elif args.command == "cancel":
            print(f"{args.jid}: {client.cancel(args.jid, args.wait_s)}")
        elif args.command == "savepoint":
            print(client.savepoint(args.jid, args.dir, args.cancel, args.wait_s))
        elif args.command == "stop":
            print(client.stop(args.jid, args.dir, args.wait_s))
        elif args.command == "watch":
            watch(client, args.jid, args.interval_s, args.for_s, lambda s: print(s, flush=True))
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
