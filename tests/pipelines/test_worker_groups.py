"""Worker groups: the property pipeline's views half in an environment of its own.

A runner starts Python workers per environment, so these tests read the environments off the
pipeline's runner API proto, as a runner does. The runs with two worker processes are in
``tests/integration/test_property_e2e.py`` (``PrismRunner-split``).
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import OptionError, PropertyConfig, PropertyRunConfig
from pipelines.property import build
from pipelines.worker_groups import VIEWS_GROUP, WORKER_GROUP_URN, in_worker_group
from transforms.types import KafkaRecord

EVENTS_HALF = {"IngestEvents", "ListingUpdates", "NotEnriched", "HighValueListings", "CountByZip"}
VIEWS_HALF = {"IngestViews", "CountViewsPerProperty", "DetectExcessiveViewing"}


def _environments_by_step(
    views_group: str | None, view_part_groups: tuple[str | None, ...] = ()
) -> dict[str, set[str]]:
    """Top-level step label -> the environments of its Python leaf transforms; with
    ``view_part_groups``, the views as that many parts (``ViewsPart0``...)."""
    pipeline = beam.Pipeline(options=PipelineOptions(["--environment_type=LOOPBACK"]))
    record = KafkaRecord("t", 0, 0, 0, b"k", b"v")
    events = pipeline | "Events" >> beam.Create([record])
    if view_part_groups:
        views = tuple(
            pipeline | f"ViewsPart{i}" >> in_worker_group(beam.Create([record]), group)
            for i, group in enumerate(view_part_groups)
        )
    else:
        views = pipeline | "Views" >> beam.Create([record])
    build(events, views, PropertyConfig(), views_group, view_part_groups)
    proto = pipeline.to_runner_api()
    by_step: dict[str, set[str]] = {}
    for transform in proto.components.transforms.values():
        if transform.subtransforms or not transform.environment_id:
            continue  # composites, and what the runner implements (GBK, Flatten, Impulse)
        step = transform.unique_name.split("/", 1)[0]
        by_step.setdefault(step, set()).add(transform.environment_id)
    return by_step


def _hints(environment_id: str, pipeline_proto) -> dict[str, bytes]:
    return dict(pipeline_proto.components.environments[environment_id].resource_hints)


def test_without_a_group_every_step_shares_the_default_environment():
    by_step = _environments_by_step(None)
    environments = set().union(*by_step.values())
    assert len(environments) == 1, by_step


def test_the_views_group_gives_the_views_half_an_environment_of_its_own():
    by_step = _environments_by_step(VIEWS_GROUP)
    views_envs = set().union(*(by_step[s] for s in VIEWS_HALF))
    events_envs = set().union(*(by_step[s] for s in EVENTS_HALF))
    assert len(views_envs) == 1 and len(events_envs) == 1, by_step
    assert views_envs != events_envs
    # The inputs (here Create) and the dead-letter and late flattens stay in the default one.
    assert by_step["Events"] == by_step["Views"] == events_envs


def test_view_parts_are_ingested_and_keyed_in_their_groups_and_counted_in_the_views_group():
    by_step = _environments_by_step(VIEWS_GROUP, (None, VIEWS_GROUP))
    events_envs = set().union(*(by_step[s] for s in EVENTS_HALF))
    views_envs = set().union(
        *(by_step[s] for s in ("CountViewsPerProperty", "DetectExcessiveViewing"))
    )
    assert len(events_envs) == 1 and len(views_envs) == 1 and views_envs != events_envs, by_step
    part_steps = ("ViewsPart{}", "IngestViewsPart{}", "KeyViewsPart{}", "KeyFraudViewsPart{}")
    for step in part_steps:
        assert by_step[step.format(0)] == events_envs, step
        assert by_step[step.format(1)] == views_envs, step
    # Past the keying, nothing of a part runs in its own worker: the counts' and alerts' steps
    # take the keyed parts (flattened by the runner) in the views group.
    assert not any(s.startswith("IngestViews") and "Part" not in s for s in by_step)


def test_views_in_parts_need_a_group_per_part():
    pipeline = beam.Pipeline()
    record = KafkaRecord("t", 0, 0, 0, b"k", b"v")
    events = pipeline | "Events" >> beam.Create([record])
    views = (pipeline | "A" >> beam.Create([record]), pipeline | "B" >> beam.Create([record]))
    with pytest.raises(ValueError, match="one worker group \\(or None\\) per part"):
        build(events, views, PropertyConfig(), VIEWS_GROUP, (None,))


def test_the_group_is_a_resource_hint_on_the_environment():
    pipeline = beam.Pipeline()
    _ = (
        pipeline
        | beam.Create([1])
        | "Grouped" >> in_worker_group(beam.Map(lambda x: x + 1), VIEWS_GROUP)
    )
    proto = pipeline.to_runner_api()
    (grouped,) = (t for t in proto.components.transforms.values() if t.unique_name == "Grouped")
    assert _hints(grouped.environment_id, proto) == {WORKER_GROUP_URN: VIEWS_GROUP.encode()}


def test_an_inner_group_wins_over_an_outer_one():
    class Outer(beam.PTransform):
        def expand(self, pcoll):
            return pcoll | "Inner" >> in_worker_group(beam.Map(str), "inner")

    pipeline = beam.Pipeline()
    _ = pipeline | beam.Create([1]) | "Outer" >> in_worker_group(Outer(), "outer")
    proto = pipeline.to_runner_api()
    (inner,) = (
        t
        for t in proto.components.transforms.values()
        if t.unique_name.startswith("Outer/Inner") and not t.subtransforms
    )
    assert _hints(inner.environment_id, proto) == {WORKER_GROUP_URN: b"inner"}


def test_no_group_leaves_the_transform_as_it_was():
    transform = beam.Map(str)
    assert in_worker_group(transform, None) is transform
    assert transform.get_resource_hints() == {}


BASE = ["--bootstrap_servers=localhost:9092", "--split_python_workers"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--environment_type=EXTERNAL", "--environment_config=localhost:50000"],
        ["--environment_type=PROCESS", '--environment_config={"command": "boot"}'],
    ],
)
def test_split_workers_with_process_workers_is_accepted(argv):
    config = PropertyRunConfig.from_options(PipelineOptions([*BASE, *argv]))
    assert config.split_python_workers is True


@pytest.mark.parametrize("argv", [[], ["--environment_type=LOOPBACK"]])
def test_split_workers_under_loopback_is_refused_naming_the_fix(argv):
    with pytest.raises(OptionError, match=r"--environment_type=EXTERNAL.*python-workers"):
        PropertyRunConfig.from_options(PipelineOptions([*BASE, *argv]))


def test_split_workers_on_dataflow_is_refused():
    argv = [*BASE, "--runner=DataflowRunner", "--environment_type=DOCKER"]
    with pytest.raises(OptionError, match="Dataflow already runs a Python worker process per core"):
        PropertyRunConfig.from_options(PipelineOptions(argv))


def test_split_workers_is_off_by_default():
    config = PropertyRunConfig.from_options(PipelineOptions(BASE[:1]))
    assert config.split_python_workers is False
