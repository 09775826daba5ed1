"""Flink session cluster jobs over its REST API: ``python -m runners.flink jobs|cancel|savepoint``.

Beam's ``result.cancel()`` on the portable Flink runner reports CANCELLED but leaves the Flink job
RUNNING (DESIGN.md); cancelling here goes to Flink itself (``PATCH /jobs/<id>?mode=cancel``).
The REST address is the local stack's ``flink-cluster`` unless ``--url`` names another.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


class FlinkRestError(RuntimeError):
    """Flink's REST API refused or did not answer; the message carries its reply."""


@dataclass(frozen=True)
class JobSummary:
    jid: str
    name: str
    state: str
    start_time_ms: int
    duration_ms: int


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
            raise FlinkRestError(f"{method} {self._url}{path}: no answer ({exc})") from exc
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

    def cancel(self, jid: str, wait_s: float = 60.0) -> str:
        """Cancel ``jid`` and wait (bounded) until Flink reports it CANCELED; returns the state."""
        self._call("PATCH", f"/jobs/{jid}?mode=cancel")
        return self._wait_state(jid, {"CANCELED", "FAILED", "FINISHED"}, wait_s)

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
            state = self.state(jid)
            if state in states:
                return state
            if time.monotonic() >= deadline:
                raise FlinkRestError(f"job {jid} is {state} after {wait_s:.0f}s, wanted {states}")
            time.sleep(0.5)


def _default_url() -> str:
    from runners.local import FLINK_CLUSTER, Stack

    stack = Stack.load()
    stack.check_alive(FLINK_CLUSTER)
    return stack.flink_rest_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners.flink", description=__doc__)
    parser.add_argument("--url", help="Flink REST url (default: the local flink-cluster)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("jobs", help="list jobs")
    p_cancel = sub.add_parser("cancel", help="cancel a job")
    p_cancel.add_argument("jid")
    p_sp = sub.add_parser("savepoint", help="trigger a savepoint")
    p_sp.add_argument("jid")
    p_sp.add_argument("--dir", help="target directory (default: state.savepoints.dir)")
    p_sp.add_argument("--cancel", action="store_true", help="cancel the job after the savepoint")
    args = parser.parse_args(argv)
    try:
        client = FlinkRest(args.url or _default_url())
        if args.command == "jobs":
            for job in client.jobs():
                print(f"{job.jid}  {job.state:<10} {job.duration_ms / 1000:8.1f}s  {job.name}")
        elif args.command == "cancel":
            print(f"{args.jid}: {client.cancel(args.jid)}")
        elif args.command == "savepoint":
            print(client.savepoint(args.jid, args.dir, args.cancel))
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
