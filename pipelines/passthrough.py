"""Topic A -> topic B, records unchanged: the smallest pipeline that proves the Kafka path.

Elements: ``KafkaRecord`` in, ``(key, value)`` bytes out, one output record per input record
(at-least-once: a restarted run may write a record twice). No windowing: the global window,
element timestamps are the input records' CreateTime; the output records get the producer's time.

Bounded when a stop condition is given (``--max_records``, ``--max_read_time_s``, ``--backfill``,
``--stop_read_time_ms``): the run ends by itself. Streaming otherwise (``--streaming`` is then set
for you): it runs until cancelled.

    python -m pipelines.passthrough --runner=PrismRunner --input_topic A --output_topic B \\
        --max_read_time_s 30
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult

from pipelines.cli import exit_with_help_if_asked
from pipelines.kafka_io import read_topic, write_topic
from pipelines.options import OptionError, PassthroughConfig, PassthroughOptions, PropertyOptions
from transforms.types import KafkaRecord

KeyValue = tuple[bytes | None, bytes | None]


def key_value(record: KafkaRecord) -> KeyValue:
    """The record's ``(key, value)``, unchanged (a tombstone stays a tombstone)."""
    return record.key, record.value


class PassRecordsThrough(
    beam.PTransform[beam.PCollection[KafkaRecord], beam.PCollection[KeyValue]]
):
    """Each record's ``(key, value)``, unchanged; element timestamps and windows are kept."""

    def expand(self, records: beam.PCollection[KafkaRecord]) -> beam.PCollection[KeyValue]:
        return records | "KeyValue" >> beam.Map(key_value)


def build(records: beam.PCollection[KafkaRecord]) -> beam.PCollection[KeyValue]:
    """The passthrough's computation, without Kafka: what tests feed and check."""
    return records | "PassRecordsThrough" >> PassRecordsThrough()


def attach(pipeline: beam.Pipeline, config: PassthroughConfig) -> None:
    """Kafka in, ``build``, Kafka out, on ``pipeline``."""
    kafka = config.kafka
    records = pipeline | "ReadInput" >> read_topic(kafka, config.input_topic)
    _ = build(records) | "WriteOutput" >> write_topic(kafka, config.output_topic)


def _read_topics(options: PipelineOptions) -> list[str]:
    """The topic the passthrough reads (for ``--profile=latency``'s partition count)."""
    topic = options.view_as(PassthroughOptions).input_topic
    return [topic] if topic else []


def pipeline_options(argv: Sequence[str]) -> tuple[PipelineOptions, PassthroughConfig]:
    """Options for ``argv`` completed by the runner presets, and the checked config."""
    from pipelines.launch import complete_argv  # the entry point's side: not on the workers

    options = PipelineOptions(
        complete_argv(
            argv,
            uses_event_time=False,
            read_topics=_read_topics,
        )
    )
    return options, PassthroughConfig.from_options(options)


def start(argv: Sequence[str]) -> PipelineResult:
    """Submits the pipeline and returns at once; the caller waits or cancels."""
    from pipelines.launch import new_pipeline  # the entry point's side: not on the workers

    options, config = pipeline_options(argv)
    pipeline = new_pipeline(options)
    attach(pipeline, config)
    return pipeline.run()


def run(argv: Sequence[str] | None = None) -> str:
    """Runs until the read stops (bounded) or the job is cancelled; returns the final state."""
    result = start(sys.argv[1:] if argv is None else argv)
    try:
        return result.wait_until_finish()
    except KeyboardInterrupt:
        # Ctrl-C stops a streaming run. On Prism this cancels the job; Beam's Flink job server
        # reports CANCELLED but leaves the Flink job running (cancel it with Flink's REST API).
        # ValueError: Beam already closed the job service channel (the job server is gone).
        with contextlib.suppress(ValueError):
            result.cancel()
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``--help`` lists every option (ours, then Beam's, grouped); a wrong
    option or a missing service is one line on stderr, exit 2."""
    from pipelines.launch import PresetError

    argv = sys.argv[1:] if argv is None else list(argv)
    exit_with_help_if_asked(argv, "python -m pipelines.passthrough", __doc__, (PropertyOptions,))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        state = run(argv)
    except (OptionError, PresetError) as exc:
        print(f"passthrough: {exc}", file=sys.stderr)
        return 2
    print(f"passthrough finished: {state}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
