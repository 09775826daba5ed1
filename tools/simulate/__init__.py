"""A seeded simulator of the two input topics, and the oracle of what the pipeline must output.

``python -m tools.simulate`` writes property events and views to Kafka in the wire format
(Confluent framing, schema ids 1 and 2 as the contract says), with:

- listings, updates, price changes and removals over ``span_h`` hours of event time, prices by
  property type, zip codes from the market-data service's dataset (plus a few it does not know);
- views by ordinary users with popular listings (Zipf), and bot users that cross the fraud
  threshold inside one 10-minute window;
- out-of-order records (send order jittered by up to ``jitter_s`` behind event time, within the
  allowed lateness), too-late records (event time in the first hour, sent at the end: late in the
  log by the contract's definition), and poison records of every malformed class.

Every record is assigned its partition here (``partition_for``), so the simulator knows each
partition's offset order and can compute the contract's "late in the log" exactly. ``generate`` is a
pure function of the spec: the records and the ``Oracle`` (the expected outputs) come out of the
same call, and ``produce`` sends them. The oracle is written independently of the pipeline's
transforms on purpose: it is the specification they are checked against.

The package: ``spec`` (what to simulate, the planned record, the partitioner), ``generate`` (the
plan), ``oracle`` (the expected outputs), ``produce`` (sending to Kafka) and ``cli``.
"""

from __future__ import annotations

from tools.simulate.generate import (
    Simulation,
    compress_time,
    generate,
    replay_command,
    zip_codes,
)
from tools.simulate.oracle import Oracle, compute_oracle
from tools.simulate.produce import produce
from tools.simulate.spec import (
    CHANNELS,
    EVENT_TYPE_WEIGHTS,
    HOUR_MS,
    MEDIAN_PRICE,
    MINUTE_MS,
    POISON_EVENT_CLASSES,
    POISON_VIEW_CLASSES,
    PROPERTY_TYPE_WEIGHTS,
    PlannedRecord,
    SimulationSpec,
    partition_for,
    scaled_spec,
    window_start,
)

__all__ = [
    "CHANNELS",
    "EVENT_TYPE_WEIGHTS",
    "HOUR_MS",
    "MEDIAN_PRICE",
    "MINUTE_MS",
    "POISON_EVENT_CLASSES",
    "POISON_VIEW_CLASSES",
    "PROPERTY_TYPE_WEIGHTS",
    "Oracle",
    "PlannedRecord",
    "Simulation",
    "SimulationSpec",
    "compress_time",
    "compute_oracle",
    "generate",
    "partition_for",
    "produce",
    "replay_command",
    "scaled_spec",
    "window_start",
    "zip_codes",
]
