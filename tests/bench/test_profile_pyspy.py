"""bench.profile_pyspy: py-spy stacks are summarised by their innermost known component."""

from __future__ import annotations

from bench.profile_pyspy import component, is_idle, parse, summarize

BUNDLE = (
    "Thread.run (threading.py:982);process_bundle (apache_beam/runners/worker/sdk_worker.py:700)"
)
STATE_IN_OUR_DOFN = (
    f"{BUNDLE};process (transforms/aggregation.py:80);"
    "GrpcStateHandler._request (apache_beam/runners/worker/sdk_worker.py:1300) 30"
)
OUR_WORK = (
    f"{BUNDLE};process (transforms/lateness.py:250);late_by_ms (transforms/lateness.py:120) 10"
)
IDLE = "Thread.run (threading.py:982);wait (threading.py:320) 500"


def test_a_stack_counts_for_its_innermost_known_component():
    ours, state = parse([OUR_WORK, STATE_IN_OUR_DOFN])
    assert component(ours[0]) == "late gate (ours)"
    # A state request made inside our DoFn counts as a state RPC, not as our code.
    assert component(state[0]) == "state RPC (Fn API state)"
    assert component(parse([f"{BUNDLE} 5"])[0][0]) == "Fn API control, per bundle (sdk_worker)"


def test_idle_threads_are_left_out_of_the_shares():
    stacks = parse([OUR_WORK, IDLE, ""])
    assert is_idle(stacks[1][0]) and not is_idle(stacks[0][0])
    text = summarize(stacks, top=3)
    assert "samples: 510 total, 10 busy" in text
    assert "100.0 %  late gate (ours)" in text


def test_the_submission_counts_as_submission_whatever_runs_inside_it():
    submission = (
        "<module> (pipelines/property.py:1);Pipeline.run (apache_beam/pipeline.py:580);"
        "ExternalTransform.expand (apache_beam/transforms/external.py:800);"
        "dumps (apache_beam/internal/pickler.py:50) 7"
    )
    ((frames, _),) = parse([submission])
    assert component(frames) == "pipeline construction and submission (expansion, artifacts)"


def test_the_range_read_and_the_hourly_views_have_buckets_of_their_own():
    read = f"{BUNDLE};process (transforms/io/kafka_ranges.py:300) 4"
    hourly = f"{BUNDLE};process (transforms/windowing.py:150) 2"
    assert component(parse([read])[0][0]) == "Kafka range read (ours, librdkafka)"
    assert component(parse([hourly])[0][0]) == "hourly views (ours)"
