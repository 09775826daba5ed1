"""End-to-end latency at 50 % load: input append -> output append, per system and output path.

    python -m bench.latency [--events 500000 | --small] [--systems raw,quix,prism,flink]
                            [--rate flink=130,prism=2000] [--load 0.5] [--max_records 100000]
                            [--prism_args '...'] [--flink_args '...'] [--label NAME]

For each system, one at a time, on ``bench.compare``'s private stack (its own ``--home``, default
``.local/bench-latency``; Kafka, Beam's Java services, the Flink job server, and the market-data
service with Redis so that the Beam pipelines enrich over HTTP from a warm cache):

1. fresh input topics (CreateTime: the producer writes the contract's timestamps) and fresh output
   topics (``LogAppendTime``: each output record carries the broker's append time);
2. the system starts in STREAMING mode: the raw loop and Quix Streams consume live up to the
   known end offsets; Prism and Flink run ``pipelines.property`` unbounded (Flink with the
   preset's checkpointing and ``--finish_bundle_before_checkpointing``);
3. warm-up: one LISTING_UPDATED event per (zip code, property type) of the simulation (the
   market-data cache then holds every key the measured events ask for) and 200 views of warm-up
   users, sent at once; the run waits until every warm-up event came out enriched (the system
   runs end to end). Warm-up records are in the oracle and excluded from the statistics;
4. the live log: the simulation (``bench.compare.scaled_spec``: 1 event : 4 views, bots,
   out-of-order, too-late and poison records) compressed in time 120 times
   (``tools.simulate.compress_time``, as the live end-to-end test does: its 3 h of event
   time last 90 s, 1 h windows 30 s, the 10 min lateness and fraud window 5 s; the pipeline and
   the references run with those windows) and sent by a child process, each record once the
   wall clock reaches its timestamp (the contract's live producer: CreateTime = event time, never
   after the send). Its size sets the rate: ``--load`` (50 %) of the system's maximum events/s
   times 90 s, the maximum taken from ``bench/results/compare*.json`` of ``--events`` records or
   from ``--rate``; capped at ``--max_records`` (the load is then lower: reported);
5. once the outputs have been quiet for 30 s (Beam) or the raw loop / Quix ended, the job is
   cancelled (Flink through Flink's REST API: Beam's cancel leaves the Flink job running), the
   outputs are read back with their append times and checked against the oracle.

Input time: the wall clock when the producer handed the record to its client (``linger.ms`` 1),
in the producer process, on the broker's machine (the broker stamps LogAppendTime with the same
clock). It is at or before the record's append time, so each latency is an upper bound, by the
producer's send delay (probed here: p50 20 ms, p99 0.5 s on the loaded 2-core machine).

Latency per output record (``output append - input time of its cause``), by path:

- ``enriched``: the stateless path (decode -> validate -> gate -> enrich from the warm cache ->
  encode -> write); cause = the LISTING_UPDATED event with the same ``event_id``. Beam enriches
  over HTTP with the Redis cache; the raw loop and Quix write FALLBACK (no HTTP call, no cache
  lookup: they have no market-data client), so theirs is the same path minus the lookup;
- ``high_value``: stateless, cause = the event with the same ``event_id``;
- ``alerts``: cause = the crossing view, the 51st view of that user in that fraud window in its
  partition's log order (the alert id names user and window);
- ``counts_by_zip``: the update with count k of a zip is caused by the k-th counted event of that
  zip in send order (the earliest moment a count of k can exist);
- ``views_hourly`` (another meaning, reported apart): the first pane of each (property, window),
  from the window's end (event time = wall clock in the live log) to its append. The raw loop
  emits hourly counts only when its input ends (bounded topology); Quix a running count per view.

Results: a table per system and path (p50/p90/p99/max ms, the p50 of each fifth of the run to
show a growing backlog), ``bench/results/latency.json``, ``latency.html`` + ``latency.png`` (CDF
per path, one line per system; ``bench.report``), linked from ``compare.html``.

The package: ``config`` (settings), ``stats``, ``causes`` (which input caused which output),
``plan`` (warm-up, live log, rates), ``outputs`` (reading outputs with append times),
``producer`` (the live input producer), ``systems``, ``measure`` (one system's run) and ``cli``.
"""

from __future__ import annotations

from bench.latency.causes import (
    Cause,
    Causes,
    TimedOutput,
    counted_records,
    find_causes,
    path_latencies,
)
from bench.latency.config import DEFAULT_HOME
from bench.latency.outputs import delete_topics, read_timed, wait_for_count
from bench.latency.plan import (
    live_origin_ms,
    log_end_offsets,
    max_rates,
    parse_rates,
    records_for,
    warmup_records,
)
from bench.latency.stats import cdf, latency_stats, percentile, trend
from bench.latency.systems import BeamRunning

__all__ = [
    "DEFAULT_HOME",
    "BeamRunning",
    "Cause",
    "Causes",
    "TimedOutput",
    "cdf",
    "counted_records",
    "delete_topics",
    "find_causes",
    "latency_stats",
    "live_origin_ms",
    "log_end_offsets",
    "max_rates",
    "parse_rates",
    "path_latencies",
    "percentile",
    "read_timed",
    "records_for",
    "trend",
    "wait_for_count",
    "warmup_records",
]
