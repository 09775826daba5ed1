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
from collections.abc import Mapping, Sequence

from runners.local.java_harness import Endpoints, boot_endpoints


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
    python = [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"]
    os.execve(python[0], python, env)


if __name__ == "__main__":
    main()
