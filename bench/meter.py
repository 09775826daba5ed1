"""CPU seconds and peak memory of the process trees a benchmark runs (psutil, sampled in a
thread): what ``cpu_s_per_million`` and ``peak_rss_mb`` are made of."""

from __future__ import annotations

import threading
import time

SAMPLE_EVERY_S = 0.5

# A process's identity: a pid alone can be reused (pid_max is 32 768 on small machines).
Ident = tuple[int, float]


def _ident(proc) -> Ident:
    """``(pid, create time)``; psutil reads the create time once per ``Process`` object."""
    return (proc.pid, proc.create_time())


class ProcessMeter:
    """CPU seconds and peak summed RSS of some process trees, sampled in a thread.

    ``roots`` gives ``name -> pid``; each root counts with all its descendants. A process belongs
    to the tree of its nearest ancestor that is a root (so nested roots do not count a process
    twice) and stays in it until it ends: a child started during the run (like Prism) is counted
    from the first sample that sees it, and a process that ends keeps the CPU of its last sample
    (what it used after that sample is lost, at most ``every_s`` of it).

    One ``psutil.process_iter`` pass per sample serves every tree: it lists the machine's pids
    and reads nothing about a process it saw before, so a sample reads ``/proc`` only for the
    processes that are new (their parent) and for the metered ones (CPU and memory). The cost
    therefore grows with the metered processes, not with the number of trees or the rest of the
    machine; ``self_cpu_s`` is what the meter's own sampling used (thread CPU time).
    """

    def __init__(self, roots: dict[str, int], every_s: float = SAMPLE_EVERY_S) -> None:
        import psutil

        self._psutil = psutil
        self._roots = dict(roots)
        self._every_s = every_s
        self._root: dict[Ident, str] = {}  # metered process -> its tree's root name
        self._label: dict[Ident, str] = {}  # metered process -> the name it is counted under
        self._outside: set[Ident] = set()  # seen, in no tree
        self._first: dict[Ident, float] = {}  # CPU s at the baseline (absent: born later, 0)
        self._last: dict[Ident, float] = {}  # CPU s at the last sample that saw it
        self.peak_rss = 0
        self.self_cpu_s = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-meter", daemon=True)

    def _classify(self, new: list, by_pid: dict) -> None:
        """Puts each newly seen process in a tree or outside all of them: the tree of its nearest
        root ancestor (its parent may be new in this same sample: resolved first)."""
        psutil = self._psutil
        root_of = {pid: name for name, pid in self._roots.items()}
        pending = {_ident(p): p for p in new}

        def resolve(ident: Ident) -> str | None:
            """The root name of ``ident``'s tree, None when it is in none."""
            if ident in self._root:
                return self._root[ident]
            proc = pending.pop(ident, None)
            if proc is None:  # outside, or already resolved as outside; ends every chain
                return None
            root: str | None = None
            try:
                if proc.pid in root_of:
                    root = root_of[proc.pid]
                    self._label[ident] = root
                else:
                    parent = by_pid.get(proc.ppid())
                    root = resolve(_ident(parent)) if parent is not None else None
            except psutil.Error:  # ended since the listing
                root = None
            if root is None:
                self._outside.add(ident)
            else:
                self._root[ident] = root
            return root

        for ident in list(pending):
            resolve(ident)

    def _sample(self, baseline: bool = False) -> None:
        psutil = self._psutil
        started = time.thread_time()
        by_pid: dict[int, object] = {}
        new = []
        for proc in psutil.process_iter():  # lists /proc; a known pid keeps its Process
            try:
                ident = _ident(proc)
            except psutil.Error:  # a zombie or gone: nothing to count
                continue
            by_pid[proc.pid] = proc
            if ident not in self._root and ident not in self._outside:
                new.append(proc)
        if new:
            self._classify(new, by_pid)
        rss = 0
        for proc in by_pid.values():
            ident = _ident(proc)
            if ident not in self._root:
                continue
            try:
                with proc.oneshot():
                    cpu = proc.cpu_times()
                    used = cpu.user + cpu.system
                    rss += proc.memory_info().rss
                    if self._label.get(ident) != self._root[ident]:
                        # Named at every sample (from the same read): a process that execs
                        # (the Java workers' Python boot script) is counted under its last name.
                        self._label[ident] = f"{self._root[ident]}/{proc.name()}"
            except psutil.Error:  # ended since the listing: its last sample stands
                continue
            if baseline:
                self._first[ident] = used
            self._last[ident] = used
        self.peak_rss = max(self.peak_rss, rss)
        self.samples += 1
        self.self_cpu_s += time.thread_time() - started

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
        """CPU seconds used since ``__enter__``, by process name (a root's name, or
        ``root/child-name`` for a descendant)."""
        out: dict[str, float] = {}
        for ident, used in self._last.items():
            name = self._label[ident]
            out[name] = out.get(name, 0.0) + used - self._first.get(ident, 0.0)
        return {k: round(v, 2) for k, v in sorted(out.items())}
