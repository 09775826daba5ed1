"""The pipelines' command-line options, and the frozen configs built from them once.

Each ``PipelineOptions`` subclass declares flags (units in the names: ``_s``, ``_ms``); each config
dataclass is built from the parsed options once, checks them with errors that name the flag, and
is what pipelines hand to transforms. Transforms never see options.

Parsing never reads the running stack: the entry point completes argv with the runner presets
first (``pipelines.launch.complete_argv``: e.g. ``--bootstrap_servers`` of the local stack when
the user gives none), so ``python -m pipelines.passthrough --runner=PrismRunner`` needs no address.

The package: ``errors`` (``OptionError``), ``kafka`` (every Kafka pipeline's options and
``KafkaConfig``), ``passthrough`` and ``property`` (each pipeline's options and configs).
"""

from __future__ import annotations

from pipelines.options.errors import OptionError
from pipelines.options.kafka import (
    KafkaConfig,
    KafkaOptions,
    is_bounded_run,
    parse_kafka_properties,
)
from pipelines.options.passthrough import PassthroughConfig, PassthroughOptions
from pipelines.options.property import (
    BACKFILL_ALLOWED_LATENESS_S,
    PropertyConfig,
    PropertyOptions,
    PropertyRunConfig,
    PropertyTopics,
)

__all__ = [
    "BACKFILL_ALLOWED_LATENESS_S",
    "KafkaConfig",
    "KafkaOptions",
    "OptionError",
    "PassthroughConfig",
    "PassthroughOptions",
    "PropertyConfig",
    "PropertyOptions",
    "PropertyRunConfig",
    "PropertyTopics",
    "is_bounded_run",
    "parse_kafka_properties",
]
