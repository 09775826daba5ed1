"""The passthrough pipeline's options and config (Kafka in, the same records out)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options.errors import OptionError
from pipelines.options.kafka import KafkaConfig


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
