"""Where the stateless path's latency goes, per runner and setting: Kafka append, read ->
pipeline output, write -> append.

    python -m bench.latency_attribution [--runners flink,prism] [--rate 150] [--seconds 60]
        [--variant NAME='--flag=v --flag2=v'] ... [--repeat 1] [--label NAME]

On ``bench.latency``'s private stack (Kafka, Beam's Java services, the Flink job server, market
data + Redis: the Beam pipeline enriches over HTTP from a warm cache), each (runner, variant,
repeat) is one streaming run of ``pipelines.property`` with its own fresh topics; variants of one
runner alternate (A B A B with ``--repeat 2``), so an A/B compares runs of one invocation.

Input: only LISTING_UPDATED events priced above the high-value threshold, so each event goes
down both stateless outputs (``enriched`` and ``high_value``). Warm-up: one event per
(zip, property type) the live events use, sent at once; the run waits until all came out
enriched (cache warm, job running end to end). Then ``--rate`` events/s for ``--seconds``, sent
by a spawned child process (not on the LOOPBACK worker's GIL) that records, per input record:

- ``send``: wall clock just before ``produce()`` (the input's CreateTime is its schedule, at or
  before the send; the payload's event time is the same);
- ``ack``: wall clock of the delivery callback (the child polls the client while it waits for the
  next send, so the callback runs within a few ms of the broker's acknowledgement) — the input's
  append time plus the ack's way back: an upper bound of the append.

Outputs: ``high_value`` on a CreateTime topic — Beam's Kafka writer leaves the record timestamp to
the producer, which stamps its ``send()`` call: the moment the pipeline handed the record to its
writer; the same child tails that topic and records when each record became readable (a
consumer with ``fetch.wait.max.ms`` 5: append + delivery to a consumer, an upper bound of the
append). ``enriched`` on a LogAppendTime topic (as ``bench.latency``): its append time.

Segments per event (ms; p50/p90/p99 by nearest rank):

- ``append``: ack - send (producer -> broker; upper bound);
- ``pipeline``: high_value write - ack (read, decode, validate, gate, filter, encode, hand to the
  writer; a lower bound by as much as ``append`` over-counts);
- ``write->append``: high_value readable - high_value write (the writer's producer, the broker and
  the tailing consumer's fetch: an upper bound);
- ``total high_value``: readable - send; ``total enriched``: append - send (the enrichment branch
  adds the market-data lookup from the Redis cache).

Each run's outputs are checked: every live event exactly once in both outputs (no loss, no
duplicate); a run that fails the check is reported as such. Results also in
``bench/results/latency-attribution[-LABEL].json``.

The package: ``inputs`` (the planned events), ``child`` (producer and output tail in a child
process), ``run`` (one run and its segments) and ``cli``.
"""

from __future__ import annotations

from bench.latency_attribution.cli import parse_variant
from bench.latency_attribution.inputs import Planned, plan, templates, warmup_payloads
from bench.latency_attribution.run import AttributionRun, check_exact, segments_of

__all__ = [
    "AttributionRun",
    "Planned",
    "check_exact",
    "parse_variant",
    "plan",
    "segments_of",
    "templates",
    "warmup_payloads",
]
