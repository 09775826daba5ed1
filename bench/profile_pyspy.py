"""Where the Python worker's time goes: record it with py-spy and summarise by component.

    python -m bench.profile_pyspy record PID OUT.txt [--seconds 60] [--rate 50]
    python -m bench.profile_pyspy summarize OUT.txt [--top 30]

With ``--environment_type=LOOPBACK`` (the runner presets' default) the Python SDK worker runs
inside the process that submitted the pipeline (``python -m bench.compare`` or
``python -m pipelines.property``), so that is the pid to record. ``record`` runs
``py-spy record --format raw`` (collapsed stacks: one line per distinct stack with its sample
count) without stopping the process; ``summarize`` prints:

- busy samples: samples whose innermost frame is not a wait (idle gRPC/threading waits removed);
- the share of busy samples in each bucket: a stack under the pipeline's submission or the
  bench's meter counts as that (``CONTEXTS``), any other goes to the ``COMPONENTS`` bucket of its
  innermost frame that matches one (a state request made inside our DoFn counts as a state RPC,
  our DoFn's own work as ours, the SDK harness's per-bundle control work as plumbing);
- the top frames by inclusive busy samples.

Numbers are samples, not seconds: at ``--rate`` 50 Hz, 50 samples are one second of one thread.
A benchmark script: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from runners.cli import FullHelpParser

# Innermost frames that mean "this thread waits" (not work).
IDLE_LEAVES = (
    "wait (threading",
    "_wait_for_tstate_lock",
    "select (",
    "poll (",
    "epoll",
    "channel_spin",
    "_next (grpc",
    "consume_request_iterator",
    "get (queue",
    "Thread.run (threading",  # a thread inside native code (gRPC's completion queue)
)

# (bucket, substrings of a frame): a stack with such a frame anywhere goes to that bucket, whatever
# runs inside it (the submission's pickling and coders are submission, not per-element work).
CONTEXTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "pipeline construction and submission (expansion, artifacts)",
        ("_submit (", "Pipeline.run (", "ExternalTransform."),
    ),
    ("bench meter (psutil)", ("ProcessMeter",)),
    # bench.compare reads the outputs back after the run, outside the CPU meter.
    ("bench: outputs read back (not metered)", ("_verify (",)),
)

# (bucket, substrings of a frame): any other stack goes to the bucket of its innermost matching
# frame (buckets listed first win when one frame matches several).
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "state RPC (Fn API state)",
        ("GrpcStateHandler", "CachingStateHandler", "RuntimeState.commit"),
    ),
    ("bundle set-up/teardown", ("monitoring_infos", "BundleProcessor.reset", "create_monitoring")),
    ("coders", ("coder_impl", "coders.py", "pickle", "dill")),
    ("Kafka range read (ours, librdkafka)", ("(transforms/io/kafka_ranges.py",)),
    ("avro codec (ours)", ("(transforms/codec/",)),
    ("output size check (ours)", ("(transforms/io/record_size.py",)),
    ("Kafka write (ours, librdkafka)", ("(transforms/io/kafka_produce.py",)),
    ("late gate (ours)", ("(transforms/lateness.py",)),
    ("event time (ours)", ("(transforms/event_time.py",)),
    ("enrichment (ours)", ("(transforms/enrichment/",)),
    ("fraud (ours)", ("(transforms/fraud.py",)),
    ("hourly views (ours)", ("(transforms/windowing.py",)),
    ("counts by zip / filters (ours)", ("(transforms/aggregation.py",)),
    ("validation (ours)", ("(transforms/validation.py",)),
    ("other transforms (ours)", ("(transforms/", "(pipelines/")),
    ("Beam operators / DoFn runner", ("operations.py", "common.py", "bundle_processor.py")),
    ("gRPC data plane", ("data_plane.py",)),
    ("Fn API control, per bundle (sdk_worker)", ("sdk_worker.py",)),
    ("gRPC runtime threads", ("grpc/",)),
)


def parse(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """Collapsed stacks (``frame;frame;... count``) as ``(frames, count)``."""
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        stacks.append((stack.split(";"), int(count)))
    return stacks


def is_idle(frames: Sequence[str]) -> bool:
    return any(idle in frames[-1] for idle in IDLE_LEAVES)


def component(frames: Sequence[str]) -> str:
    """The ``CONTEXTS`` bucket of any frame of ``frames`` (outermost first), else the
    ``COMPONENTS`` bucket of the innermost frame that matches one."""
    for name, needles in CONTEXTS:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    for frame in reversed(frames):
        for name, needles in COMPONENTS:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def _short(frame: str) -> str:
    """``function (file.py)`` without the line number and directories."""
    match = re.match(r"^(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    return f"{match.group(1)} ({match.group(2).rsplit('/', 1)[-1]})"


def summarize(stacks: list[tuple[list[str], int]], top: int = 30) -> str:
    busy = [(frames, n) for frames, n in stacks if not is_idle(frames)]
    total = sum(n for _, n in busy) or 1
    buckets: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in busy:
        buckets[component(frames)] += n
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += n
    out = [
        f"samples: {sum(n for _, n in stacks)} total, {total} busy",
        "",
        "share of busy samples by component:",
    ]
    out += [f"  {100 * n / total:5.1f} %  {name}" for name, n in buckets.most_common()]
    out += ["", f"top {top} frames by inclusive busy samples:"]
    skip = ("Thread.", "_bootstrap", "_Worker.run", "_WorkItem.run")
    frames = [(f, n) for f, n in inclusive.most_common() if not f.startswith(skip)][:top]
    out += [f"  {100 * n / total:5.1f} %  {f}" for f, n in frames]
    return "\n".join(out)


def record(pid: int, out: Path, seconds: int, rate: int) -> None:
    """py-spy record of ``pid`` (raw collapsed stacks) into ``out``; py-spy must be installed
    (the dev extra)."""
    subprocess.run(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        check=True,
        timeout=seconds + 120,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = FullHelpParser(prog="python -m bench.profile_pyspy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="py-spy a running Python worker")
    rec.add_argument("pid", type=int)
    rec.add_argument("out", type=Path)
    rec.add_argument("--seconds", type=int, default=60)
    rec.add_argument("--rate", type=int, default=50, help="samples per second")
    summ = sub.add_parser("summarize", help="summarise a raw py-spy recording")
    summ.add_argument("file", type=Path)
    summ.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    if args.command == "record":
        record(args.pid, args.out, args.seconds, args.rate)
        print(f"recorded {args.out}")
    else:
        print(summarize(parse(args.file.read_text().splitlines()), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
