"""The wire contract's constants, in one place: topics, keys, enum symbols, schema ids, defaults.

The contract (``docs/contract.md``) is fixed by the producers outside the project: input topics
and their keys, the input schemas (``schemas/property_event.avsc``, ``property_view.avsc``, read
here for their enum symbols so that no list of symbols is written twice), the default output
topics, and the time rules (1 h tumbling windows, 10 min allowed lateness, "late in the log").
Options, transforms, the simulator and the stack's topic configuration (``runners/topics.toml``,
``runners/security.toml``, checked against this module by a test) read these names from here.
"""

from __future__ import annotations

from schemas import (
    CATALOG,
    DEAD_LETTER_ID,
    ENRICHED_PROPERTY_EVENT_ID,
    PROPERTY_EVENT_ID,
    PROPERTY_VIEW_ID,
)

# --- topics (defaults; every name is a pipeline option) ----------------------------------------

EVENTS_TOPIC = "property-events"  # key: property_id; value: PropertyEvent
VIEWS_TOPIC = "property-views"  # key: user_id; value: PropertyView
ENRICHED_TOPIC = "enriched-property-events"
HIGH_VALUE_TOPIC = "high-value-properties"
ZIP_COUNTS_TOPIC = "properties-by-zip"
VIEWS_HOURLY_TOPIC = "property-views-hourly"
ALERTS_TOPIC = "alerts"
DLQ_TOPIC = "property-events-dlq"
LATE_TOPIC = "property-events-late"

INPUT_TOPICS: tuple[str, ...] = (EVENTS_TOPIC, VIEWS_TOPIC)
OUTPUT_TOPICS: tuple[str, ...] = (
    ENRICHED_TOPIC,
    HIGH_VALUE_TOPIC,
    ZIP_COUNTS_TOPIC,
    VIEWS_HOURLY_TOPIC,
    ALERTS_TOPIC,
    DLQ_TOPIC,
    LATE_TOPIC,
)


# --- enum symbols, read from the contract's schemas ----------------------------------------------


def enum_symbols(record: str, field: str) -> tuple[str, ...]:
    """The symbols of the enum ``field`` of the catalog's latest ``record`` schema."""
    for f in CATALOG.latest(record).definition["fields"]:
        if f["name"] == field:
            return tuple(f["type"]["symbols"])
    raise KeyError(f"{record} has no enum field {field!r}")


EVENT_TYPES: tuple[str, ...] = enum_symbols("PropertyEvent", "event_type")
PROPERTY_TYPES: tuple[str, ...] = enum_symbols("PropertyEvent", "property_type")
CHANNELS: tuple[str, ...] = enum_symbols("PropertyView", "channel")
LISTING_UPDATED = "LISTING_UPDATED"  # the event type that is enriched with market data

# --- schema ids (without a registry; a registry assigns its own) -------------------------------

PROPERTY_EVENT_SCHEMA_ID = PROPERTY_EVENT_ID
PROPERTY_VIEW_SCHEMA_ID = PROPERTY_VIEW_ID
ENRICHED_SCHEMA_ID = ENRICHED_PROPERTY_EVENT_ID
DEAD_LETTER_SCHEMA_ID = DEAD_LETTER_ID

# --- time rules --------------------------------------------------------------------------------

WINDOW_SIZE_S = 3600  # hourly views and the late gate's window: 1 h tumbling, epoch-aligned
ALLOWED_LATENESS_S = 600  # the late gate: late when the partition's stream time passed end + this
# Beam's allowed lateness for the windows behind the gate (hourly views, fraud): the gate's window
# plus its lateness, so that Beam never drops a record the gate let through.
BEAM_ALLOWED_LATENESS_S = WINDOW_SIZE_S + ALLOWED_LATENESS_S

if LISTING_UPDATED not in EVENT_TYPES:  # pragma: no cover - a schema edit would break the rule
    raise ImportError(f"{LISTING_UPDATED} is not a PropertyEvent event_type: {EVENT_TYPES}")
