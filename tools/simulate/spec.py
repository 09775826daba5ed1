"""What the simulator is asked for (``SimulationSpec``), what it plans (``PlannedRecord``), and the
shares, prices and poison classes it draws from. ``partition_for`` is the simulator's own
partitioner: knowing each record's partition is what lets the oracle know each partition's log."""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

from schemas.contract import EVENT_TYPES, PROPERTY_TYPES

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS

# Share of each event type and property type (symbols from the contract's schema, in its order).
_EVENT_TYPE_SHARE = {
    "LISTING_CREATED": 0.15,
    "LISTING_UPDATED": 0.45,
    "PRICE_CHANGED": 0.30,
    "LISTING_REMOVED": 0.10,
}
_PROPERTY_TYPE_SHARE = {
    "SINGLE_FAMILY": 0.45,
    "CONDO": 0.25,
    "TOWNHOUSE": 0.15,
    "MULTI_FAMILY": 0.10,
    "LAND": 0.05,
}
EVENT_TYPE_WEIGHTS = tuple(_EVENT_TYPE_SHARE[t] for t in EVENT_TYPES)
PROPERTY_TYPE_WEIGHTS = tuple(_PROPERTY_TYPE_SHARE[t] for t in PROPERTY_TYPES)
# Median asking price per property type (USD); prices are log-normal around these.
MEDIAN_PRICE = {
    "SINGLE_FAMILY": 420_000,
    "CONDO": 310_000,
    "TOWNHOUSE": 360_000,
    "MULTI_FAMILY": 650_000,
    "LAND": 150_000,
}
CHANNELS = ("WEB", "MOBILE", "API")

POISON_EVENT_CLASSES = (
    "null_value",
    "short",
    "bad_magic",
    "unknown_schema_id",
    "corrupt_body",
    "wrong_schema",
    "invalid_zip",
    "invalid_price",
    "empty_id",
    "future_event_time",
)
POISON_VIEW_CLASSES = ("null_value", "corrupt_body", "empty_user_id")
# A poison class of the burst only (``poison_burst``): a record with neither key nor value.
NULL_RECORD = "null_key_and_value"
# ``PlannedRecord.kind`` of an event written with a writer schema the v1 reader cannot read.
INCOMPATIBLE = "poison:incompatible_schema"
# ``PlannedRecord.kind`` of a valid record no output topic accepts once processed (too large).
OVERSIZE = "oversize"


@dataclass(frozen=True)
class SimulationSpec:
    """What to simulate. Defaults make a ~1-minute local demo; tests use smaller numbers."""

    seed: int = 7
    properties: int = 400
    users: int = 300
    events: int = 4_000
    views: int = 16_000
    bots: int = 3
    bot_views: int = 60
    poison_per_class: int = 2
    too_late: int = 20
    partitions: int = 4
    span_h: int = 3
    jitter_s: int = 240
    unknown_zip_share: float = 0.02
    # How many zip codes the unknown share draws from ("00000" upwards, all below the market
    # dataset's first zip): 2 by default; as many as the dataset has for an input whose keys the
    # market data never knows (unknown_zip_share 1.0) with as many distinct keys as a known one.
    unknown_zip_count: int = 2
    # Bad input at scale (none by default; drawn after everything else, so a spec without them
    # plans the same log as before). ``poison_burst`` poison records of every class in turn (both
    # topics' classes, and records with neither key nor value) sent one after another in the
    # middle of the log; ``oversize`` valid LISTING_UPDATED events below the high-value threshold
    # whose value is ``oversize_bytes`` long (a padded event id): counted by zip, but their
    # enriched record is too large for any output topic at Kafka's default limits, so each is one
    # dead letter; ``null_keys`` valid records sent without a key (still valid: the pipeline keys
    # its outputs by payload fields).
    poison_burst: int = 0
    oversize: int = 0
    oversize_bytes: int = 1_048_576
    null_keys: int = 0
    # Writer schema versions (none by default; drawn from their own random stream after
    # everything else, so a spec without them plans the same log as before). ``v2_share`` of the
    # valid PropertyEvents are written with the compatible v2 writer schema
    # (``records.PROPERTY_EVENT_V2``: an added optional field, set) under ``v2_schema_id``;
    # ``incompatible`` events are written with ``records.PROPERTY_EVENT_INCOMPATIBLE`` (``price``
    # a string) under ``incompatible_schema_id``: poison records. Both ids must be registered in
    # the schema registry the pipeline reads (``--schema_registry_url``); 0 means unset.
    v2_share: float = 0.0
    v2_schema_id: int = 0
    incompatible: int = 0
    incompatible_schema_id: int = 0
    # Pipeline semantics the oracle must mirror (defaults of pipelines.options).
    gate_window_s: int = 3600
    allowed_lateness_s: int = 600
    fraud_window_s: int = 600
    fraud_threshold: int = 50
    high_value_threshold: int = 500_000
    hourly_window_s: int = 3600
    # Event time of the end of the simulated span; None = now (so the span ends "now" and a
    # capped clock-skewed record's timestamp sits at the end of its partition's log).
    end_ms: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "properties",
            "users",
            "events",
            "views",
            "partitions",
            "span_h",
            "unknown_zip_count",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"SimulationSpec.{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.v2_share <= 1.0:
            raise ValueError(f"SimulationSpec.v2_share must be in [0, 1], got {self.v2_share}")
        if not 0.0 <= self.unknown_zip_share <= 1.0:
            raise ValueError(
                f"SimulationSpec.unknown_zip_share must be in [0, 1], got {self.unknown_zip_share}"
            )
        if self.v2_share and self.v2_schema_id <= 0:
            raise ValueError(
                "SimulationSpec.v2_share needs v2_schema_id: register records.PROPERTY_EVENT_V2 "
                "in the schema registry and pass its id"
            )
        if self.incompatible and self.incompatible_schema_id <= 0:
            raise ValueError(
                "SimulationSpec.incompatible needs incompatible_schema_id: register "
                "records.PROPERTY_EVENT_INCOMPATIBLE in the schema registry and pass its id"
            )
        for name in ("poison_burst", "oversize", "null_keys", "incompatible"):
            if getattr(self, name) < 0:
                raise ValueError(f"SimulationSpec.{name} must be >= 0, got {getattr(self, name)}")
        if self.oversize and self.oversize_bytes < 1024:
            raise ValueError(
                f"SimulationSpec.oversize_bytes must be >= 1024, got {self.oversize_bytes}"
            )
        if self.jitter_s * 1000 >= self.allowed_lateness_s * 1000:
            raise ValueError(
                "jitter_s must stay below allowed_lateness_s, or ordinary records turn late"
            )


@dataclass(frozen=True)
class PlannedRecord:
    """One record to produce. ``kind`` is ``valid``, ``too_late``, ``poison:<class>`` or
    ``oversize`` (valid, but too large for the outputs)."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    kind: str
    payload: dict[str, Any] | None = None


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of a key (CRC32 modulo partitions): deterministic, so the oracle knows
    the log."""
    return zlib.crc32(key) % partitions


def window_start(ts_ms: int, size_ms: int) -> int:
    return ts_ms - ts_ms % size_ms


def scaled_spec(spec: SimulationSpec, speedup: int) -> SimulationSpec:
    """``spec`` with its time parameters (windows, lateness, jitter) divided by ``speedup``; each
    must divide exactly, in whole seconds, as the pipeline's options take them."""
    if speedup < 1:
        raise ValueError(f"speedup must be >= 1, got {speedup}")
    names = ("gate_window_s", "allowed_lateness_s", "fraud_window_s", "hourly_window_s", "jitter_s")
    uneven = [n for n in names if getattr(spec, n) % speedup]
    if uneven:
        raise ValueError(f"speedup {speedup} does not divide {uneven} of the spec exactly")
    return dataclasses.replace(spec, **{n: getattr(spec, n) // speedup for n in names})
