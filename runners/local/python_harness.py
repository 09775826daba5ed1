"""A Python SDK harness started the way Beam's Python container boots one: the boot command of
the local stack's Python worker pool (``python-workers``, ``--environment_type=EXTERNAL``).

Beam's process worker pool (``apache_beam.runners.worker.worker_pool_main``) without a container
executable starts each worker as ``SdkHarness(control, worker_id, state_cache_size=0, ...)``: the
job's pipeline options never reach the worker. So every user-state read and write of the stateful
steps (the late gate, counts by zip, fraud) is a round trip to the runner, with no cache, and the
options a job sets for its workers (``--max_cache_memory_usage_mb``, experiments, log levels) are
ignored. This boot command asks the runner's provision service for the job's options and
endpoints and runs ``sdk_worker_main``, Beam's own worker entry point, with them: the worker is
configured as under LOOPBACK (which builds its harness from the options) or in Beam's container.

Invoked by the pool as ``<script> --id=ID --logging_endpoint=URL --artifact_endpoint=URL
--provision_endpoint=URL --control_endpoint=URL`` (the script is written by
``runners.local.flink_services``). The project's code is importable because the pool runs in the
repository; nothing is staged, so ``--artifact_endpoint`` is not used.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from collections.abc import Mapping, Sequence

from runners.local.java_harness import Endpoints, boot_endpoints

SHORT_ID_BASE_ENV = "PROPERTY_STREAMS_SHORT_ID_BASE"
WORKER_MODE = "--run_worker"


def worker_env(worker_id: str, endpoints: Endpoints, base: Mapping[str, str]) -> dict[str, str]:
    """``sdk_worker_main``'s environment contract: the worker id, the control and logging
    descriptors, the job's options and the runner's capabilities."""
    env = dict(base)
    env.update(
        WORKER_ID=worker_id,
        CONTROL_API_SERVICE_DESCRIPTOR=endpoints.control,
        LOGGING_API_SERVICE_DESCRIPTOR=endpoints.logging,
    )
    if endpoints.pipeline_options:
        env["PIPELINE_OPTIONS"] = endpoints.pipeline_options
    if endpoints.capabilities:
        env["RUNNER_CAPABILITIES"] = " ".join(endpoints.capabilities)
    return env


def main(argv: Sequence[str] | None = None) -> None:
    # The protos the boot needs come without Beam's package init (``boot_endpoints``): the worker
    # imports the SDK itself right after the exec, so importing it here would cost it twice.
    args, endpoints = boot_endpoints(argv, __doc__.split("\n\n")[0])
    env = worker_env(args.id, endpoints, os.environ)
    # The pool gives the worker a stdout pipe it never reads: the worker's stdout joins stderr,
    # the pool's log, so a chatty worker cannot block on a full pipe.
    os.dup2(2, 1)
    print(f"{time.strftime('%H:%M:%S')} python-harness: starting worker {args.id}", flush=True)
    env[SHORT_ID_BASE_ENV] = str(short_id_base(args.id))
    python = [sys.executable, "-m", "runners.local.python_harness", WORKER_MODE]
    os.execve(python[0], python, env)


def short_id_base(worker_id: str) -> int:
    """Where this worker's metric short ids start: apart from every other worker's of the job.

    Beam's Python worker numbers the short ids of its metrics 1, 2, 3... in each process, and
    Prism (2.73) keeps one short-id table per job, not per worker: with two worker processes in
    one job (two environments, ``--split_python_workers``) the second worker's id "5" resolves to
    the first worker's metric "5", and Prism fails the job decoding a counter as a distribution.
    Under LOOPBACK every worker is a thread of one process sharing one numbering, so this never
    shows there. 2**20 ids per worker, placed by the worker id's CRC-32."""
    return zlib.crc32(worker_id.encode()) << 20


def is_worker_command(cmdline: Sequence[str]) -> bool:
    """Whether a process's command line is a Python SDK worker this boot command started."""
    return WORKER_MODE in cmdline and "runners.local.python_harness" in cmdline


def run_worker() -> None:
    """Beam's ``sdk_worker_main``, with the short ids of this process from ``short_id_base``."""
    from apache_beam.runners.worker import sdk_worker, sdk_worker_main

    # A private counter of Beam's short-id cache; the split pipeline's end-to-end test
    # (tests/integration/test_property_e2e.py, PrismRunner-split) fails with Prism's panic if a
    # Beam release renames it.
    sdk_worker.SHORT_ID_CACHE._last_short_id = int(os.environ.pop(SHORT_ID_BASE_ENV, "0"))
    sdk_worker_main.main([sys.argv[0]])


if __name__ == "__main__":
    if sys.argv[1:] == [WORKER_MODE]:
        run_worker()
    else:
        main()
