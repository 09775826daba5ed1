"""Flink's REST API as a client: job list, state, failures (exception history), cancel,
stop-with-savepoint, savepoints, and the embedded Flink's address from the job server's log."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
                    # A few seconds at a time: a newer job (ours, when the one seen is a job
                    # started just before within the clock slack) is picked at the next look.
                    wait = min(10.0, max(0.0, deadline - time.monotonic()))
                    self.wait_tasks_running(jid, wait)
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
