"""Worker groups: a part of a pipeline run by a Python SDK worker process of its own.

A portable runner starts Python SDK workers per *environment* of the pipeline: Prism (2.73) one
worker per environment, Flink ``--sdk_worker_parallelism`` per environment and TaskManager. A
pipeline built the ordinary way has one environment, so on Prism every Python step of the job
runs in one process, on one core, however many the machine has. Beam's Python SDK gives a
transform an environment of its own when its resource hints differ from the pipeline's
(``PipelineContext.get_environment_id_for_resource_hints``): the same worker image, another
worker. ``worker_group`` is such a hint; it asks for nothing but the separate worker.

The property pipeline's two inputs are independent up to the dead-letter and late outputs, so
``--split_python_workers`` puts the views half (its read, ingest, hourly counts, fraud alerts and
their writes) in the group ``views``: two processes, joined only by the few dead letters and late
records of the views topic, which the runner hands from one to the other. With a read of
resolved ranges (``--backfill``, ``--stop_read_time_ms``) a quarter of the views topic's
partitions is read, ingested and keyed into the hourly and fraud windows in the events' worker,
and the keyed sums meet the views worker's at the counts' shuffle: a bounded run otherwise left
the events' worker idle while the views worker gated and keyed every view
(``pipelines.property.VIEWS_PARTITION_SHARES``). Each worker must be a process: under
``--environment_type=LOOPBACK`` both environments are threads of the submitting process, under
one GIL (``PropertyRunConfig`` refuses that pairing). docs/performance.md, changes 15 and 18,
have the measurements.
"""

from __future__ import annotations

from typing import TypeVar

import apache_beam as beam
from apache_beam.transforms.resources import ResourceHint

#: The hint's URN; not a Beam standard URN: runners that do not know it only see another
#: environment (Prism, Flink). Dataflow is not offered the hint (``PropertyRunConfig``).
WORKER_GROUP_URN = "property-streams:resources:worker_group:v1"
#: The group of the property pipeline's views half under ``--split_python_workers``.
VIEWS_GROUP = "views"

T = TypeVar("T", bound=beam.PTransform)


class WorkerGroupHint(ResourceHint):
    """``worker_group=<name>``: run this transform (and, on a composite, its parts) in the
    environment of that name. An inner group wins over an outer one."""

    urn = WORKER_GROUP_URN

    @classmethod
    def get_merged_value(cls, outer_value: bytes, inner_value: bytes) -> bytes:
        return inner_value


ResourceHint.register_resource_hint("worker_group", WorkerGroupHint)


def in_worker_group(transform: T, group: str | None) -> T:
    """``transform`` in worker group ``group``; unchanged when ``group`` is None."""
    if group is None:
        return transform
    return transform.with_resource_hints(worker_group=group)
