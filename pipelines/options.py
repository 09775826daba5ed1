"""The pipelines' command-line options, and the frozen configs built from them once.

Each ``PipelineOptions`` subclass declares flags (units in the names: ``_s``, ``_ms``); each config
dataclass is built from the parsed options once, checks them with errors that name the flag, and
is what pipelines hand to transforms. Transforms never see options.

``runners.presets.runner_args`` fills ``--bootstrap_servers`` from the running local stack when the
user gives none, so ``python -m pipelines.passthrough --runner=PrismRunner`` needs no address.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from apache_beam.options.pipeline_options import CrossLanguageOptions, PipelineOptions

from transforms.io.kafka import EXPANSION_SERVICE_KEY

_PROPERTY = re.compile(r"^([A-Za-z0-9_.\-]+)=(.*)$", re.DOTALL)
# Set through their own flags, so that one value cannot come from two places.
_PROPERTIES_WITH_FLAGS = {
    "bootstrap.servers": "--bootstrap_servers",
    "group.id": "--consumer_group",
    "auto.offset.reset": "--offset_reset",
}


class OptionError(ValueError):
    """A pipeline option is missing or wrong; the message names the flag and what to give."""


class KafkaOptions(PipelineOptions):
    """Where Kafka is, how to connect, and when a bounded run stops."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--bootstrap_servers",
            help="Kafka bootstrap servers, 'host:port[,host:port]'. Filled in from the local "
            "stack (python -m runners.local up) when not given.",
        )
        parser.add_argument(
            "--consumer_group",
            help="Kafka consumer group id (group.id) of the reads; none by default.",
        )
        parser.add_argument(
            "--offset_reset",
            choices=["earliest", "latest"],
            default="earliest",
            help="Where a read starts when its group has no committed offset (auto.offset.reset).",
        )
        parser.add_argument(
            "--kafka_property",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Extra Kafka client property for consumers and producers, repeatable, passed "
            "unchanged: e.g. --kafka_property security.protocol=SASL_SSL "
            "--kafka_property sasl.mechanism=SCRAM-SHA-512.",
        )
        parser.add_argument(
            "--max_records",
            type=int,
            help="Bounded run: stop after this many records (split evenly across partitions; "
            "a partition with fewer than its share makes the read wait, so prefer "
            "--max_read_time_s or --stop_read_time_ms with unbalanced partitions).",
        )
        parser.add_argument(
            "--max_read_time_s",
            type=int,
            help="Bounded run: stop reading after this many seconds.",
        )
        parser.add_argument(
            "--start_read_time_ms",
            type=int,
            help="Start each partition at its first record with a timestamp at or after this "
            "time (ms since the epoch) instead of the committed offset.",
        )
        parser.add_argument(
            "--stop_read_time_ms",
            type=int,
            help="Bounded run: stop each partition before its first record with a timestamp at "
            "or after this time (ms since the epoch); every partition must hold such a record "
            "(a replay of the past), else Beam's Kafka read fails.",
        )


@dataclass(frozen=True)
class KafkaConfig:
    """Kafka settings of one pipeline run, checked; built once by ``from_options``.

    ``expansion_service`` is the Kafka IO expansion service from ``--beam_services`` (None: Beam's
    default lookup); pipelines pass it to the IO transforms explicitly, because Beam applies
    ``--beam_services`` only inside ``with beam.Pipeline(...)``.
    """

    bootstrap_servers: str
    consumer_group: str | None = None
    offset_reset: str = "earliest"
    properties: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    max_records: int | None = None
    max_read_time_s: int | None = None
    start_read_time_ms: int | None = None
    stop_read_time_ms: int | None = None
    expansion_service: str | None = None

    @property
    def bounded(self) -> bool:
        """True when the read has a stop condition (the run ends by itself)."""
        return any(
            v is not None for v in (self.max_records, self.max_read_time_s, self.stop_read_time_ms)
        )

    def consumer_config(self) -> dict[str, str]:
        """Consumer properties: the extra properties plus group id and offset reset."""
        config = dict(self.properties)
        config["auto.offset.reset"] = self.offset_reset
        if self.consumer_group:
            config["group.id"] = self.consumer_group
        return config

    def producer_config(self) -> dict[str, str]:
        """Producer properties: the extra properties, unchanged."""
        return dict(self.properties)

    @classmethod
    def from_options(cls, options: PipelineOptions) -> KafkaConfig:
        """The config of ``options``; ``OptionError`` naming the flag when one is wrong."""
        kafka = options.view_as(KafkaOptions)
        if not kafka.bootstrap_servers:
            raise OptionError(
                "--bootstrap_servers is required: give 'host:port', or start the local stack "
                "(python -m runners.local up) so that the runner presets fill it in"
            )
        properties = parse_kafka_properties(kafka.kafka_property)
        for name in ("max_records", "max_read_time_s"):
            value = getattr(kafka, name)
            if value is not None and value <= 0:
                raise OptionError(f"--{name} must be a positive integer, got {value}")
        for name in ("start_read_time_ms", "stop_read_time_ms"):
            value = getattr(kafka, name)
            if value is not None and value < 0:
                raise OptionError(f"--{name} must be ms since the epoch (>= 0), got {value}")
        if (
            kafka.start_read_time_ms is not None
            and kafka.stop_read_time_ms is not None
            and kafka.stop_read_time_ms <= kafka.start_read_time_ms
        ):
            raise OptionError("--stop_read_time_ms must be after --start_read_time_ms")
        services = options.view_as(CrossLanguageOptions).beam_services or {}
        return cls(
            bootstrap_servers=kafka.bootstrap_servers,
            consumer_group=kafka.consumer_group,
            offset_reset=kafka.offset_reset,
            properties=MappingProxyType(properties),
            max_records=kafka.max_records,
            max_read_time_s=kafka.max_read_time_s,
            start_read_time_ms=kafka.start_read_time_ms,
            stop_read_time_ms=kafka.stop_read_time_ms,
            expansion_service=services.get(EXPANSION_SERVICE_KEY),
        )


def is_bounded_run(options: PipelineOptions) -> bool:
    """True when the options give the Kafka read a stop condition (the run ends by itself)."""
    kafka = options.view_as(KafkaOptions)
    return any(
        v is not None for v in (kafka.max_records, kafka.max_read_time_s, kafka.stop_read_time_ms)
    )


def parse_kafka_properties(items: list[str] | None) -> dict[str, str]:
    """``['k=v', ...]`` of repeated ``--kafka_property`` as a dict; the last of a key wins."""
    properties: dict[str, str] = {}
    for item in items or []:
        match = _PROPERTY.match(item)
        if not match:
            raise OptionError(
                f"--kafka_property {item!r} is not KEY=VALUE (e.g. security.protocol=SASL_SSL)"
            )
        key, value = match.groups()
        if key in _PROPERTIES_WITH_FLAGS:
            raise OptionError(
                f"--kafka_property {key}=... : set it with {_PROPERTIES_WITH_FLAGS[key]} instead"
            )
        properties[key] = value
    return properties


class PassthroughOptions(PipelineOptions):
    """Topics of the passthrough pipeline (topic A -> topic B)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--input_topic", help="Topic to read.")
        parser.add_argument("--output_topic", help="Topic to write.")


@dataclass(frozen=True)
class PassthroughConfig:
    """The passthrough pipeline's settings."""

    input_topic: str
    output_topic: str
    kafka: KafkaConfig

    @classmethod
    def from_options(cls, options: PipelineOptions) -> PassthroughConfig:
        topics = options.view_as(PassthroughOptions)
        for flag in ("input_topic", "output_topic"):
            if not getattr(topics, flag):
                raise OptionError(f"--{flag} is required (a Kafka topic name)")
        if topics.input_topic == topics.output_topic:
            raise OptionError(
                f"--input_topic and --output_topic are both {topics.input_topic!r}: the "
                "passthrough would read its own output forever; give two topics"
            )
        return cls(
            input_topic=topics.input_topic,
            output_topic=topics.output_topic,
            kafka=KafkaConfig.from_options(options),
        )
