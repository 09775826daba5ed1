"""CPU seconds and peak memory of the process trees a benchmark runs (psutil, sampled in a
thread): what ``cpu_s_per_million`` and ``peak_rss_mb`` are made of."""

from __future__ import annotations

import threading

SAMPLE_EVERY_S = 0.5


class ProcessMeter:
    """CPU seconds and peak summed RSS of some process trees, sampled in a thread.

    ``roots`` gives ``name -> pid``; each root counts with all its descendants (found again at
    every sample, so a child started during the run, like Prism, is included). CPU of a process
    that ends between two samples is counted up to its last sample.
    """

    def __init__(self, roots: dict[str, int], every_s: float = SAMPLE_EVERY_S) -> None:
        import psutil

        self._psutil = psutil
        self._roots = roots
        self._every_s = every_s
        self._first: dict[tuple[int, float], float] = {}
        self._last: dict[tuple[int, float], tuple[str, float]] = {}
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-meter", daemon=True)

    def _sample(self, baseline: bool = False) -> None:
        psutil = self._psutil
        rss = 0
        for name, pid in self._roots.items():
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in procs:
                try:
                    with proc.oneshot():
                        ident = (proc.pid, proc.create_time())
                        cpu = proc.cpu_times()
                        used = cpu.user + cpu.system
                        rss += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                if baseline:
                    self._first[ident] = used
                self._last[ident] = (name if proc.pid == pid else f"{name}/{proc.name()}", used)
        self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._sample()

    def __enter__(self) -> ProcessMeter:
        self._sample(baseline=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample()

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds used since ``__enter__``, by process name."""
        out: dict[str, float] = {}
        for ident, (name, used) in self._last.items():
            out[name] = out.get(name, 0.0) + used - self._first.get(ident, 0.0)
        return {k: round(v, 2) for k, v in sorted(out.items())}
