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
