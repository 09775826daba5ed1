"""Every TestPipeline runs on a known runner, whatever the machine's network (tests/conftest.py)."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.runners.direct.direct_runner import DirectPipelineResult
from apache_beam.runners.portability.fn_api_runner.fn_runner import RunnerResult
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import FixedWindows

from tests.conftest import pinned_test_pipeline_options
from tests.transforms.event_records import streaming_test_pipeline


def test_test_pipelines_get_the_pinned_options():
    assert TestPipeline().options_list == pinned_test_pipeline_options().split()


def test_a_batch_test_pipeline_runs_on_the_fn_api_runner_not_prism():
    p = TestPipeline()
    assert_that(p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2), equal_to([2, 4, 6]))
    result = p.run()
    assert isinstance(result, RunnerResult), type(result)


def test_a_test_stream_pipeline_runs_on_the_bundle_based_direct_runner():
    p = streaming_test_pipeline()
    stream = TestStream().add_elements([1, 2]).advance_watermark_to_infinity()
    counted = (
        p
        | stream
        | beam.WindowInto(FixedWindows(60))
        | beam.CombineGlobally(sum).without_defaults()
    )
    assert_that(counted, equal_to([3]))
    result = p.run()
    assert isinstance(result, DirectPipelineResult), type(result)
