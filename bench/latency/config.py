"""The latency benchmark's settings: load, sizes, the live log's time compression, the paths
measured, and how long each wait may last."""

from __future__ import annotations

from bench.workload import (
    REPO_ROOT,
)

DEFAULT_HOME = REPO_ROOT / ".local" / "bench-latency"


DEFAULT_LOAD = 0.5


DEFAULT_MAX_RECORDS = 100_000


MIN_RECORDS = 2_000


# The live log's time compression (tools.simulate.compress_time): the simulator's 3 h of
# event time are sent in 90 s; 1 h windows last 30 s, lateness and the fraud window 5 s.
SPEEDUP = 120


# The references have no window firing to time (bench.raw_loop, bench.quix_topology docstrings).
NO_WINDOW_FIRING = {
    "raw": "the raw loop emits hourly counts once, when its input ends",
    "quix": "Quix emits a running count per view, not a pane when the window closes",
    "kstreams": "Kafka Streams (the seed: no suppress) emits count updates at each commit",
}


PATHS = ("enriched", "high_value", "alerts", "counts_by_zip", "views_hourly")


QUANTILES = (50, 90, 99)


WARMUP_VIEWS = 200


WARMUP_TIMEOUT_S = 600.0


QUIET_S = 30.0  # a streaming job is done when its outputs grew for none of these seconds


QUIET_S_RAW = 5.0


# Quix stops after this long without input. Between the warm-up and the live log there is a
# pause (the next window boundary, up to one compressed hour = 30 s, plus building the live log
# and its oracle): with 20 s, a loaded machine made Quix exit before the live log (seen: only the
# warm-up processed). Costs this long at the end of a Quix run; latencies are unaffected.
QUIX_IDLE_S = 90.0


# Producer of the measured input: send each record at once (linger adds to every latency).
INPUT_PRODUCER = {"linger.ms": 1}


LATENCY_PRODUCER = {"linger.ms": 1}
