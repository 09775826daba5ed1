"""``SubmittedJob``: a Beam job submitted to the local stack's Flink (or a Flink at a REST url),
found and cancelled through Flink's REST API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from runners.flink.rest import FlinkRest, embedded_rest_url


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
