"""The stack's Python worker pool (``python-workers``) gives every worker the job's options.

Beam's process pool alone starts a worker as ``SdkHarness(..., state_cache_size=0)`` with no
pipeline options: the stateful steps then read and write every state cell over gRPC, and a job's
worker settings are ignored. The stack boots its workers with ``runners.local.python_harness``,
which fetches the job's options from the runner's provision service. A job on Prism with its
Python steps in the pool reads, inside the worker process, the options it was submitted with.
"""

from __future__ import annotations

import os
import uuid

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from runners import local
from runners.presets import PRISM_BINARY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CACHE_MB = 37


def _worker_view(_: object, submitter_pid: int) -> tuple[str, int, bool]:
    """The job name the worker process was given, the state cache size (bytes) Beam's worker
    entry point derives from its options, and whether it is another process than the submitter
    (LOOPBACK would run the step in the submitter)."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions
    from apache_beam.runners.worker.sdk_worker_main import (
        _get_state_cache_size_bytes,
        _parse_pipeline_options,
    )

    options = _parse_pipeline_options(os.environ.get("PIPELINE_OPTIONS"))
    return (
        options.view_as(GoogleCloudOptions).job_name,
        _get_state_cache_size_bytes(options),
        os.getpid() != submitter_pid,
    )


def test_pool_workers_run_with_the_jobs_pipeline_options(session_stack):
    if not PRISM_BINARY.exists():
        pytest.fail(f"Prism binary missing at {PRISM_BINARY}: run `make setup` (runners.install)")
    stack = session_stack.ensure([local.PYTHON_WORKERS])
    job_name = f"pool-options-{uuid.uuid4().hex[:8]}"
    options = PipelineOptions(
        [
            "--runner=PrismRunner",
            f"--prism_location={PRISM_BINARY}",
            "--experiments=disable_prism_server_singleton",
            "--environment_type=EXTERNAL",
            f"--environment_config={stack.python_worker_pool}",
            f"--job_name={job_name}",
            f"--max_cache_memory_usage_mb={CACHE_MB}",
        ]
    )
    with beam.Pipeline(options=options) as pipeline:
        seen = (
            pipeline
            | "One" >> beam.Create([0])
            | "WorkerView" >> beam.Map(_worker_view, submitter_pid=os.getpid())
        )
        assert_that(seen, equal_to([(job_name, CACHE_MB << 20, True)]))
