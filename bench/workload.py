"""What every benchmark runs: the systems, the simulated input at a given volume, each
system's own output topics and the flags that name them, where a Flink system's job runs."""

from __future__ import annotations

from pathlib import Path

from pipelines.options import PropertyTopics
from pipelines.property import OUTPUT_SPECS
from tools.simulate import SimulationSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SYSTEMS = ("raw", "quix", "kstreams", "prism", "prism_split", "flink", "flink_split")
# Measured only when named in --systems (they start more processes).
OPTIONAL_SYSTEMS = ("flink_cluster", "flink_pool")
RUNNERS = {
    "prism": "PrismRunner",
    "flink": "FlinkRunner",
    "flink_cluster": "FlinkRunner",
    "flink_pool": "FlinkRunner",
    "prism_split": "PrismRunner",
    "flink_split": "FlinkRunner",
}
#: Systems run with ``--split_python_workers`` (the views half in a worker of its own).
SPLIT_SYSTEMS = ("prism_split", "flink_split")
#: Systems whose Python steps run in the stack's worker pool (``python-workers``).
POOL_SYSTEMS = ("flink_pool", *SPLIT_SYSTEMS)
#: ``flink_pool``: Python SDK worker processes per TaskManager, and the job's parallelism.
POOL_WORKERS = 2
PARTITIONS = 4
DEFAULT_EVENTS = 500_000
SMALL_EVENTS = 20_000
# Output name -> PropertyTopics field (the pipeline's output table).
OUTPUT_FIELDS = {name: spec.topic_field for name, spec in OUTPUT_SPECS.items()}


def scaled_spec(
    records: int, seed: int = 7, end_ms: int | None = None, keys: str = "mixed"
) -> SimulationSpec:
    """A simulation of about ``records`` input records, with the demo's proportions.

    One property event for four views; users and properties grow with the volume so that an
    ordinary user stays far below the fraud threshold (~3 views per 10-minute window, as in the
    default spec) and only the bots alert. ``keys``: the properties' zip codes, ``mixed`` as in
    the demo (2 % outside the market data), ``known`` all in the market dataset, ``unknown`` all
    outside it, drawn from as many zip codes as the dataset has (about as many distinct
    enrichment keys as ``known``, each one a "no data" answer).
    """
    from runners.marketdata.dataset import DEFAULT_ZIP_COUNT

    zips = {
        "mixed": {},
        "known": {"unknown_zip_share": 0.0},
        "unknown": {"unknown_zip_share": 1.0, "unknown_zip_count": DEFAULT_ZIP_COUNT},
    }
    if keys not in zips:
        raise ValueError(f"keys must be one of {sorted(zips)}, got {keys!r}")
    if records < 1_000:
        raise ValueError(f"--events must be at least 1000, got {records}")
    events = records // 5
    views = records - events
    return SimulationSpec(
        seed=seed,
        events=events,
        views=views,
        # Capped: the simulator draws each view's listing with random.choices over weights,
        # O(properties) per view (10 000 properties made 500 000 records take many minutes).
        properties=min(1_000, max(400, events // 10)),
        users=max(300, views * 300 // 16_000),
        end_ms=end_ms,
        **zips[keys],
    )


def system_topics(system: str, tag: str, inputs: tuple[str, str]) -> PropertyTopics:
    """Fresh output topics for one system of one run (inputs shared by every system)."""
    prefix = f"bench-{tag}-{system}"
    return PropertyTopics(
        events=inputs[0],
        views=inputs[1],
        **{f: f"{prefix}-{f.replace('_', '-')}" for f in OUTPUT_FIELDS.values()},
    )


def topic_flags(topics: PropertyTopics) -> list[str]:
    """``pipelines.property`` flags naming every topic of ``topics``."""
    return [f"--{f}_topic={getattr(topics, f)}" for f in PropertyTopics.__dataclass_fields__]


def flink_master_flags(system: str, flink_rest: str | None) -> list[str]:
    """Where a Flink system's job runs: the job server's embedded Flink (``[local]``) for
    ``flink``, the session cluster's REST address for ``flink_cluster``. Explicit for both: the
    job server applies its own ``--flink-master`` only to a pipeline that says ``[auto]``."""
    if system in ("flink", "flink_pool", "flink_split"):
        return ["--flink_master=[local]"]
    if system == "flink_cluster":
        if not flink_rest:
            raise ValueError("flink_cluster needs the session cluster's REST address")
        return [f"--flink_master={flink_rest}"]
    return []


def split_flags(system: str) -> list[str]:
    """For ``prism_split`` / ``flink_split``: ``--split_python_workers``, the views half in a
    Python worker process of its own (``pipelines/worker_groups.py``); the runner presets put
    both halves' workers in the bench stack's pool. Nothing for the other systems."""
    return ["--split_python_workers"] if system in SPLIT_SYSTEMS else []


def python_pool_flags(system: str, pool: str | None) -> list[str]:
    """For ``flink_pool``: the Python steps in Beam's process worker pool at ``pool``
    (``--environment_type=EXTERNAL``), ``POOL_WORKERS`` SDK worker processes for the embedded
    TaskManager and as many subtasks. With the preset's LOOPBACK every Python step of every
    subtask shares one process and its GIL; here each worker is a process of its own, so a
    machine's cores can serve them. Nothing for the other systems."""
    if system != "flink_pool":
        return []
    if not pool:
        raise ValueError("flink_pool needs the Python worker pool's address")
    return [
        "--environment_type=EXTERNAL",
        f"--environment_config={pool}",
        f"--sdk_worker_parallelism={POOL_WORKERS}",
        f"--parallelism={POOL_WORKERS}",
    ]
