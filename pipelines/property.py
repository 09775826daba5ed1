"""The property pipeline: the seed article's whole topology on Beam, Kafka in and Kafka out.

``build`` composes the transforms on two PCollections of ``KafkaRecord`` (property events and
property views) and returns the named outputs as payload dicts; ``attach_kafka`` reads the input
topics and writes every output to its topic; ``run`` parses options, fills in the runner's
environment (``pipelines.launch``: the runner presets) and runs.
``python -m pipelines.property --runner=PrismRunner`` (the local default) or
``--runner=FlinkRunner``.

Time semantics (defaults; every number is an option):

- Records are decoded (Confluent wire format), validated (the contract's rules) and passed through
  the late gate, in that order. Undecodable and invalid records go to the dead-letter output; a
  record that is "late in the log" (its partition's stream time already passed its 1 h window's
  end plus the allowed lateness, 10 min) goes to the late output and is counted nowhere else.
  These decisions depend only on the log, so a replay gives the same answer as the live run.
- Event time is the payload's ``event_time``, stamped by the gate on each record it passes (after
  its decision, which uses the log only); watermarks come from the Kafka read's CreateTime
  policy.
- Hourly views: 1 h tumbling windows per property, fired at the watermark (plus optional early
  panes), accumulating; Beam's allowed lateness is the gate's window plus its lateness, so
  nothing the gate passed is dropped by Beam: a straggler re-fires its window as a LATE pane.
- Counts by zip: a running count per zip code in the global window, one update per event.
- Fraud alerts: more than 50 views by one user in a 10-minute tumbling window, one alert per
  (user, window) with a deterministic id, emitted on the view that crosses the threshold
  (streaming) or with the window's final count (bounded runs: views summed per bundle first).
- Enrichment: LISTING_UPDATED events get market data over HTTP (cache, retries, circuit breaker);
  a failure degrades to ``enrichment_status = FALLBACK``, never a drop.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineResult

from pipelines import run_control
from pipelines.cli import exit_with_help_if_asked
from pipelines.kafka_access import KafkaAccessError, check_access
from pipelines.kafka_io import read_topic, write_topic
from pipelines.options import (
    OptionError,
    PassthroughOptions,
    PropertyConfig,
    PropertyOptions,
    PropertyRunConfig,
)
from pipelines.worker_groups import VIEWS_GROUP, in_worker_group
from transforms.aggregation import CountByZip, HighValueListings, ListingUpdates
from transforms.codec import DecodeAvro, EncodeAvro, FieldKey
from transforms.dead_letter import DeadLetter
from transforms.enrichment import EnrichWithMarketData, enriched_event
from transforms.fraud import DetectExcessiveViewing
from transforms.ingest import DecodeAndValidate
from transforms.io.client_config import (
    ClientConfigError,
    librdkafka_config,
    load_client_security,
)
from transforms.io.kafka_ranges import KafkaRangeError
from transforms.io.record_size import EncodeForTopic, FitRecordValue
from transforms.lateness import GateLateRecords
from transforms.metrics import CountDeadLetters
from transforms.types import Decoded, KafkaRecord
from transforms.validation import ValidateEvents, ValidateViews
from transforms.windowing import CountViewsPerProperty

LOG = logging.getLogger(__name__)


class PropertyOutputs(NamedTuple):
    """The pipeline's named outputs: payload dicts in the shape of the output schemas, or
    ``Decoded`` records with such a payload for the outputs made of one input record each (their
    ``source`` is the record a too-large output is dead-lettered as)."""

    enriched: beam.PCollection  # Decoded, EnrichedPropertyEvent payloads
    high_value: beam.PCollection  # Decoded, PropertyEvent payloads, price above the threshold
    counts_by_zip: beam.PCollection  # ZipCount dicts (running, one update per event)
    views_hourly: beam.PCollection  # PropertyViewCount dicts (panes EARLY/ON_TIME/LATE)
    alerts: beam.PCollection  # Alert dicts
    dead_letters: beam.PCollection  # DeadLetter records
    late: beam.PCollection  # LateRecord dicts


def _not_enriched(decoded: Decoded) -> Decoded:
    """The EnrichedPropertyEvent of an event when no market-data service is configured."""
    return decoded._replace(
        payload=enriched_event(decoded.payload, None, "no market-data service configured")
    )


class IngestResult(NamedTuple):
    """One input stream after ingestion: ``on_time`` Decoded records stamped with their event
    time; ``dead_letters`` (undecodable or invalid); ``late`` (LateRecord dicts)."""

    on_time: beam.PCollection
    dead_letters: beam.PCollection
    late: beam.PCollection


class IngestStream(beam.PTransform[beam.PCollection[KafkaRecord], IngestResult]):
    """Decode and validate (one step) → late gate (which stamps the records it passes with their
    event time), for one input topic.

    The order matters: undecodable and invalid records never move a partition's stream time, and
    lateness is decided on the log before any event-time step (see the module docstring).
    """

    def __init__(self, reader_schema: str, validate: beam.PTransform, config: PropertyConfig):
        super().__init__()
        self._reader_schema = reader_schema
        self._validate = validate
        self._config = config

    def expand(self, records: beam.PCollection[KafkaRecord]) -> IngestResult:
        config = self._config
        # Decoded and validated in one step (one DoFn and one exception handler per record,
        # docs/performance.md change 20); the dead letters are those of the two transforms.
        valid = records | "DecodeAndValidate" >> DecodeAndValidate(
            DecodeAvro(self._reader_schema, schema_registry_url=config.schema_registry_url),
            self._validate,
        )
        gated = valid.valid | "GateLateRecords" >> GateLateRecords(
            config.window_size_s,
            config.allowed_lateness_s,
            max_held=config.gate_max_held,
            # The on-time records leave the gate at their event time: no AssignEventTime step
            # of their own (one DoFn call and one WindowedValue less per record).
            stamp_event_time=True,
        )
        return IngestResult(on_time=gated.on_time, dead_letters=valid.dead_letters, late=gated.late)


def build(
    events: beam.PCollection[KafkaRecord],
    views: beam.PCollection[KafkaRecord] | tuple[beam.PCollection[KafkaRecord], ...],
    config: PropertyConfig,
    views_group: str | None = None,
    view_part_groups: Sequence[str | None] = (),
) -> PropertyOutputs:
    """Compose the transforms on the two input streams; see the module docstring for semantics.

    ``views_group``: the worker group (``pipelines.worker_groups``) of the views half's steps
    (ingest, hourly counts, fraud); None: the pipeline's default environment, as every other step.

    ``views`` may be a tuple of parts, disjoint sets of the views topic's partitions
    (``read_topic(partition_share=...)``), with ``view_part_groups`` naming each part's group:
    each part is ingested (its own late gate: the gate decides per partition) and keyed into the
    hourly and fraud windows in its group, and the counts and alerts are made from the keyed
    parts in ``views_group``. The outputs are those of one views input.
    """
    ingested_events = events | "IngestEvents" >> IngestStream(
        "PropertyEvent", ValidateEvents(), config
    )
    hourly = CountViewsPerProperty(
        config.window_size_s,
        config.beam_allowed_lateness_s,
        config.early_firing_s,
        # A bounded run sums each property's panes in one grouping instead of per-property
        # state: Flink's batch runner gives each key of a stateful DoFn a bundle of its own.
        bounded=config.bounded,
    )
    fraud = DetectExcessiveViewing(
        config.fraud_threshold,
        config.fraud_window_s,
        config.beam_allowed_lateness_s,
        # A bounded run fires each window once at its end: no early pane to wait for, so the
        # views are summed per bundle before the shuffle.
        early_alerts=not config.bounded,
    )
    if isinstance(views, tuple):
        if len(views) != len(view_part_groups):
            raise ValueError(
                f"build got {len(views)} parts of the views and {len(view_part_groups)} "
                "view_part_groups: give one worker group (or None) per part"
            )
        ingested_views, keyed_hourly, keyed_fraud = [], [], []
        for index, (part, group) in enumerate(zip(views, view_part_groups, strict=True)):
            ingested = part | f"IngestViewsPart{index}" >> in_worker_group(
                IngestStream("PropertyView", ValidateViews(), config), group
            )
            ingested_views.append(ingested)
            keyed_hourly.append(
                ingested.on_time
                | f"KeyViewsPart{index}" >> in_worker_group(hourly.key_into_windows(), group)
            )
            keyed_fraud.append(
                ingested.on_time
                | f"KeyFraudViewsPart{index}" >> in_worker_group(fraud.key_into_windows(), group)
            )
        hourly_input: Any = tuple(keyed_hourly)
        fraud_input: Any = tuple(keyed_fraud)
    else:
        ingested = views | "IngestViews" >> in_worker_group(
            IngestStream("PropertyView", ValidateViews(), config), views_group
        )
        ingested_views = [ingested]
        hourly_input = fraud_input = ingested.on_time
    on_time_events = ingested_events.on_time

    updates = on_time_events | "ListingUpdates" >> ListingUpdates()
    if config.marketdata_url:
        enrich = EnrichWithMarketData(
            config.marketdata_url,
            call_timeout_s=config.marketdata_timeout_s,
            max_retries=config.marketdata_max_retries,
            failure_threshold=config.circuit_failure_threshold,
            cooldown_s=config.circuit_cooldown_s,
        )
        if config.redis_host:
            enrich = enrich.with_redis_cache(
                config.redis_host,
                config.redis_port,
                config.cache_ttl_s,
                not_found_ttl_s=config.cache_not_found_ttl_s,
            )
        enriched = updates | "EnrichWithMarketData" >> enrich
    else:
        enriched = updates | "NotEnriched" >> beam.Map(_not_enriched)

    return PropertyOutputs(
        enriched=enriched,
        high_value=on_time_events
        | "HighValueListings" >> HighValueListings(config.high_value_threshold),
        # A bounded run groups each zip's events instead of keeping per-zip state: Flink's batch
        # runner gives each key of a stateful DoFn a bundle of its own.
        counts_by_zip=on_time_events | "CountByZip" >> CountByZip(bounded=config.bounded),
        views_hourly=hourly_input | "CountViewsPerProperty" >> in_worker_group(hourly, views_group),
        alerts=fraud_input | "DetectExcessiveViewing" >> in_worker_group(fraud, views_group),
        dead_letters=(ingested_events.dead_letters, *(i.dead_letters for i in ingested_views))
        | "AllDeadLetters" >> beam.Flatten(),
        late=(ingested_events.late, *(i.late for i in ingested_views))
        | "AllLate" >> beam.Flatten(),
    )


class OutputSpec(NamedTuple):
    """How one output is written: its Avro schema (catalog name), the field that keys it, and
    the ``PropertyTopics`` field naming its topic."""

    schema: str
    key_field: str
    topic_field: str


# The contract's output table: schema and key of each output (topic names come from options).
OUTPUT_SPECS: dict[str, OutputSpec] = {
    "enriched": OutputSpec("EnrichedPropertyEvent", "property_id", "enriched"),
    "high_value": OutputSpec("PropertyEvent", "property_id", "high_value"),
    "counts_by_zip": OutputSpec("ZipCount", "zip_code", "zip_counts"),
    "views_hourly": OutputSpec("PropertyViewCount", "property_id", "views_hourly"),
    "alerts": OutputSpec("Alert", "user_id", "alerts"),
    "dead_letters": OutputSpec("DeadLetter", "key", "dlq"),  # the original record's key
    "late": OutputSpec("LateRecord", "key", "late"),  # the original record's key
}


# The outputs made of one input record each (``Decoded``), checked for size before the write.
FROM_ONE_INPUT = ("enriched", "high_value")
# The outputs of the views half: encoded and written in its worker group.
FROM_VIEWS = ("views_hourly", "alerts")
# ``--split_python_workers`` with a range read: the views partitions the events' worker reads
# (p % 4 == 0: a quarter of them with 4, 8... partitions) and those the views worker reads. A
# view costs the worker about a quarter of an event, and there are four views per event: with a
# quarter of the views the two workers' loads come out about even (docs/performance.md,
# change 18).
VIEWS_PARTITION_SHARES = (((0,), 4), ((1, 2, 3), 4))


def _dead_letter_avro(dead_letter: DeadLetter) -> dict[str, Any]:
    return dead_letter.to_avro()


def attach_kafka(pipeline: beam.Pipeline, run_config: PropertyRunConfig) -> PropertyOutputs:
    """Reads both input topics, ``build``s, and writes every output to its topic.

    An enriched or high-value record that Kafka's producer would refuse (larger than
    ``max.request.size``) becomes a dead letter of the input record it came from, and a dead
    letter or late record too large to write loses the original value it carries
    (``transforms/io/record_size.py``): a write failure would fail the bundle on every retry, and
    the job with it.

    With ``run_config.split_python_workers`` the views half, from its read to its writes, runs in
    the worker group ``views`` (``pipelines.worker_groups``)."""
    kafka, topics = run_config.kafka, run_config.topics
    views_group = VIEWS_GROUP if run_config.split_python_workers else None
    limit = kafka.max_record_bytes

    commit = run_config.commit_offsets
    events = pipeline | "ReadEvents" >> read_topic(kafka, topics.events, commit_offsets=commit)
    view_part_groups: tuple[str | None, ...] = ()
    if views_group is not None and kafka.range_read:
        # The views worker would otherwise gate and key every view alone while the events'
        # worker, done with the events, waits: a share of the views partitions is read,
        # ingested and keyed in the events' worker, the rest in the views worker, and the
        # keyed sums meet at the counts' shuffle (docs/performance.md, change 18).
        view_part_groups = (None, views_group)
        views: Any = tuple(
            pipeline
            | f"ReadViewsPart{index}"
            >> in_worker_group(
                read_topic(kafka, topics.views, commit_offsets=commit, partition_share=share),
                group,
            )
            for index, (share, group) in enumerate(
                zip(VIEWS_PARTITION_SHARES, view_part_groups, strict=True)
            )
        )
    else:
        views = pipeline | "ReadViews" >> in_worker_group(
            read_topic(kafka, topics.views, commit_offsets=commit), views_group
        )
    outputs = build(events, views, run_config.pipeline, views_group, view_part_groups)
    too_large = []
    for name, spec in OUTPUT_SPECS.items():
        if name == "dead_letters":
            continue  # below, with the records refused for their size
        label = _label(name)
        topic = getattr(topics, spec.topic_field)
        key = FieldKey(spec.key_field)
        records = getattr(outputs, name)
        group = views_group if name in FROM_VIEWS else None
        if name in FROM_ONE_INPUT:
            sized = records | f"Encode{label}" >> EncodeForTopic(spec.schema, key, topic, limit)
            encoded = sized.fits
            too_large.append(sized.too_large)
        else:
            if name == "late":
                records = records | "FitLate" >> FitRecordValue(spec.schema, spec.key_field, limit)
            encoded = records | f"Encode{label}" >> in_worker_group(
                EncodeAvro(spec.schema, None, key), group
            )
        _ = encoded | f"Write{label}" >> in_worker_group(write_topic(kafka, topic), group)
    spec = OUTPUT_SPECS["dead_letters"]
    refused = (
        tuple(too_large)
        | "TooLargeToWrite" >> beam.Flatten()
        | "CountTooLarge" >> CountDeadLetters()
    )
    _ = (
        (outputs.dead_letters, refused)
        | "DeadLettersAndRefused" >> beam.Flatten()
        | "DeadLetterRecords" >> beam.Map(_dead_letter_avro)
        | "FitDeadLetters" >> FitRecordValue(spec.schema, spec.key_field, limit)
        | "EncodeDeadLetters" >> EncodeAvro(spec.schema, None, FieldKey(spec.key_field))
        | "WriteDeadLetters" >> write_topic(kafka, getattr(topics, spec.topic_field))
    )
    return outputs


def _label(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def _read_topics(options: PipelineOptions) -> list[str]:
    """The topics the property pipeline reads (for ``--profile=latency``'s partition count)."""
    opts = options.view_as(PropertyOptions)
    return [opts.events_topic, opts.views_topic]


def pipeline_options(argv: Sequence[str]) -> tuple[PipelineOptions, PropertyRunConfig]:
    """Options for ``argv`` completed by the runner presets, and the checked run config.

    Streaming unless the read is bounded (``--max_records``, ``--max_read_time_s``, ``--backfill``,
    ``--stop_read_time_ms``). Bad options raise ``OptionError`` naming the flag, before anything
    is submitted.
    """
    from pipelines.launch import complete_argv  # the entry point's side: not on the workers

    options = PipelineOptions(
        complete_argv(argv, services=("marketdata", "redis"), read_topics=_read_topics)
    )
    run_config = PropertyRunConfig.from_options(options)
    return options, run_config


def check_kafka_access(options: PipelineOptions, run_config: PropertyRunConfig) -> None:
    """With ``--kafka_config_file``: raise ``KafkaAccessError`` (one line) unless its user
    authenticates, may READ both inputs, WRITE every output and READ ``--consumer_group``.
    Skipped for Dataflow (the launching machine may not reach the cluster) and with
    ``--skip_kafka_access_check``."""
    kafka, topics = run_config.kafka, run_config.topics
    runner = str(options.view_as(StandardOptions).runner or "")
    if not kafka.config_file or not kafka.check_access or "Dataflow" in runner:
        return
    inputs = [topics.events, topics.views]
    check_access(
        kafka.bootstrap_servers,
        librdkafka_config(load_client_security(kafka.config_file)),
        read_topics=inputs,
        write_topics=[t for t in vars(topics).values() if t not in inputs],
        group=kafka.consumer_group,
        user=f"the user of {kafka.config_file}",
    )


def _submit(options: PipelineOptions, run_config: PropertyRunConfig) -> PipelineResult:
    from pipelines.launch import new_pipeline  # the entry point's side: not on the workers

    check_kafka_access(options, run_config)
    pipeline = new_pipeline(options)
    attach_kafka(pipeline, run_config)
    return pipeline.run()


def start(argv: Sequence[str]) -> PipelineResult:
    """Submits the pipeline and returns at once; the caller waits or cancels.

    Raises ``OptionError`` for bad options and ``KafkaAccessError`` when the Kafka user cannot
    do what the run needs, before anything is submitted."""
    return _submit(*pipeline_options(argv))


def run(argv: Sequence[str] | None = None) -> str:
    """Runs until the read stops (bounded) or the job is cancelled; returns the final state.

    On ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM under ``main``) the job is cancelled, on Flink
    through Flink's REST API (``run_control.stop_job``), and the interrupt propagates."""
    options, run_config = pipeline_options(sys.argv[1:] if argv is None else argv)
    flink_job = run_control.flink_job_of(options)  # before submission: it looks for newer jobs
    result = _submit(options, run_config)
    run_control.reclaim_signals()
    watch = run_control.FlinkFailureWatch(flink_job).start() if flink_job else None
    try:
        state = result.wait_until_finish()
    except KeyboardInterrupt:
        LOG.warning("interrupted: stopping the job")
        if watch:
            watch.stop()
        run_control.stop_job(
            result, flink=run_control.is_flink(options), flink_job=flink_job, say=LOG.warning
        )
        raise
    except BaseException as exc:
        # A failed job: its workers' last words are the failure's echo (the error line says it).
        run_control.job_ended()
        if watch:
            watch.stop()
            if watch.cause:  # cancelled at a Kafka failure no restart heals: that is the cause
                raise KafkaAccessError(watch.cause) from exc
        raise
    if watch:
        watch.stop()
        if watch.cause:
            raise KafkaAccessError(watch.cause)
    # A worker thread of the finished job may still end on a stream the runner closed (seen once
    # in CI as a thread's gRPC traceback after a DONE backfill): the log file keeps it.
    run_control.job_ended()
    return state


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``--help`` lists every option (ours, then Beam's, grouped); Ctrl-C or
    SIGTERM stops the job (exit 130); a failure is one line on stderr with its cause (exit 1),
    the whole trace in the run's log file (``run_control``)."""
    from pipelines.launch import PresetError

    argv = sys.argv[1:] if argv is None else list(argv)
    exit_with_help_if_asked(argv, "python -m pipelines.property", __doc__, (PassthroughOptions,))
    log_path = run_control.setup_logging("property")
    try:
        with run_control.signals_as_interrupt():
            state = run(argv)
    except KeyboardInterrupt:
        run_control.say("property pipeline stopped: the job was cancelled")
        return 130
    except (OptionError, PresetError, KafkaAccessError, KafkaRangeError, ClientConfigError) as exc:
        run_control.say(f"error: {exc}")
        return 1
    except Exception as exc:
        run_control.FILE_ONLY.error("the pipeline failed", exc_info=True)
        run_control.say(
            f"error: the pipeline failed: {run_control.failure_line(exc)} (full trace: {log_path})"
        )
        return 1
    print(f"property pipeline finished: {state}", file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
