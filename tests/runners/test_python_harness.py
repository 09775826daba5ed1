"""The pool's boot command for Python workers (``runners.local.python_harness``)."""

from __future__ import annotations

import subprocess
import sys

from runners.local.python_harness import (
    SHORT_ID_BASE_ENV,
    WORKER_MODE,
    is_worker_command,
    short_id_base,
)

IDS = [
    "job-001[job]_ref_Environment_default_environment_1",
    "job-001[job]_ref_Environment_environment_with_resource_hints_2",
]


def test_two_workers_of_a_job_number_their_metrics_apart():
    # Prism keeps one short-id table per job: two workers' ids must never meet (2**20 each).
    first, second = (short_id_base(i) for i in IDS)
    assert abs(first - second) >= 1 << 20
    assert short_id_base(IDS[0]) == first  # the same worker id, the same place


def test_the_worker_entry_point_starts_its_short_ids_at_the_base():
    # The worker mode sets Beam's short-id counter before Beam's worker main runs; with no
    # control endpoint the main then stops, and the counter is what this checks, in a process
    # of its own as the pool starts it.
    base = short_id_base(IDS[1])
    code = (
        "import runpy, sys\n"
        "from apache_beam.runners.worker import sdk_worker, sdk_worker_main\n"
        "sdk_worker_main.main = lambda argv: print(sdk_worker.SHORT_ID_CACHE._last_short_id)\n"
        f"sys.argv = ['python_harness', {WORKER_MODE!r}]\n"
        "runpy.run_module('runners.local.python_harness', run_name='__main__')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={SHORT_ID_BASE_ENV: str(base), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert int(out.split()[-1]) == base


def test_a_worker_is_told_apart_from_the_boot_command_by_its_command_line():
    python = sys.executable
    worker = [python, "-m", "runners.local.python_harness", WORKER_MODE]
    boot = [python, "-m", "runners.local.python_harness", "--id=1", "--control_endpoint=x"]
    assert is_worker_command(worker)
    assert not is_worker_command(boot)
    assert not is_worker_command([python, "-m", "apache_beam.runners.worker.worker_pool_main"])
