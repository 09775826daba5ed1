"""The property pipeline's options, topic names and configs: ``PropertyConfig`` (what it
computes) and ``PropertyRunConfig`` (the whole run: Kafka, topics, enrichment, computation)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

from pipelines.options.errors import OptionError
from pipelines.options.kafka import KafkaConfig
from schemas import contract


class PropertyOptions(PipelineOptions):
    """Topics, time semantics, thresholds and services of the property pipeline."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("property pipeline")
        for flag, default, what in (
            ("events_topic", contract.EVENTS_TOPIC, "input: PropertyEvent records"),
            ("views_topic", contract.VIEWS_TOPIC, "input: PropertyView records"),
            ("enriched_topic", contract.ENRICHED_TOPIC, "output: EnrichedPropertyEvent"),
            ("high_value_topic", contract.HIGH_VALUE_TOPIC, "output: high-value PropertyEvents"),
            ("zip_counts_topic", contract.ZIP_COUNTS_TOPIC, "output: ZipCount updates"),
            ("views_hourly_topic", contract.VIEWS_HOURLY_TOPIC, "output: PropertyViewCount"),
            ("alerts_topic", contract.ALERTS_TOPIC, "output: Alert"),
            ("dlq_topic", contract.DLQ_TOPIC, "output: DeadLetter"),
            ("late_topic", contract.LATE_TOPIC, "output: LateRecord"),
        ):
            group.add_argument(f"--{flag}", default=default, help=f"Kafka topic, {what}.")
        group.add_argument(
            "--window_size_s",
            type=int,
            default=contract.WINDOW_SIZE_S,
            help="Tumbling event-time window of the hourly view counts and of the late gate.",
        )
        group.add_argument(
            "--allowed_lateness_s",
            type=int,
            default=contract.ALLOWED_LATENESS_S,
            help="A record is late when its partition's stream time passed its window's end "
            "plus this; late records go to the late topic.",
        )
        group.add_argument(
            "--gate_max_held",
            type=int,
            default=0,
            help="Let the late gate hold up to N records of a partition that arrive ahead of a "
            "missing offset, until it arrives (for runners that reorder a partition's bundles). "
            "Held records get no watermark hold: on Prism they then reach the hourly windows "
            "behind the watermark and Prism restarts those windows' counts, so 0 (off) by default.",
        )
        group.add_argument(
            "--early_firing_s",
            type=int,
            default=None,
            help="Emit early (speculative) hourly counts every N s of processing time.",
        )
        group.add_argument(
            "--fraud_threshold",
            type=int,
            default=50,
            help="Alert when a user has more than this many views in one fraud window.",
        )
        group.add_argument(
            "--fraud_window_s", type=int, default=600, help="Fraud window (tumbling), seconds."
        )
        group.add_argument(
            "--high_value_threshold",
            type=int,
            default=500_000,
            help="Listings priced above this (USD) go to the high-value topic.",
        )
        group.add_argument(
            "--marketdata_url",
            default=None,
            help="Market-data service base URL (filled in from the local stack when running); "
            "none: every LISTING_UPDATED event goes out with enrichment_status FALLBACK.",
        )
        group.add_argument(
            "--marketdata_timeout_s", type=float, default=2.0, help="Per HTTP call, seconds."
        )
        group.add_argument(
            "--marketdata_max_retries",
            type=int,
            default=2,
            help="Retries of a transient market-data failure (timeout, 5xx, 429).",
        )
        group.add_argument(
            "--circuit_failure_threshold",
            type=int,
            default=5,
            help="Consecutive failed calls that open the market-data circuit breaker.",
        )
        group.add_argument(
            "--circuit_cooldown_s",
            type=float,
            default=30.0,
            help="How long an open circuit refuses calls before a trial call.",
        )
        group.add_argument(
            "--redis_url",
            default=None,
            help="redis://host:port of the market-data cache (filled in from the local stack); "
            "none: no cache.",
        )
        group.add_argument(
            "--cache_ttl_s", type=int, default=3600, help="Market-data cache entry lifetime."
        )
        group.add_argument(
            "--cache_not_found_ttl_s",
            type=int,
            default=300,
            help="How long the cache keeps the service's 'no market data for this zip code and "
            "type' (a 404), so that events of unknown keys do not call the service each; 0: "
            "never cached.",
        )
        group.add_argument(
            "--schema_registry_url",
            default=None,
            help="Confluent-compatible schema registry; none: the schemas/ catalog (ids 1, 2 "
            "for the inputs).",
        )
        group.add_argument(
            "--split_python_workers",
            action="store_true",
            help="Run the views half (its read, ingest, hourly counts, fraud alerts and writes) "
            "in a Python SDK worker process of its own, beside the events half's: the job's "
            "Python work on two cores instead of one (Prism: one worker per environment). Needs "
            "workers that are processes: --environment_type=EXTERNAL with a worker pool (filled "
            "in from the local stack's python-workers: python -m runners.local up "
            "python-workers) or PROCESS; not LOOPBACK, not Dataflow (which runs a worker per "
            "core already). With --backfill or --stop_read_time_ms a quarter of the views "
            "topic's partitions is read, ingested and keyed in the events' worker, the two "
            "workers' loads about even.",
        )
        group.add_argument(
            "--commit_offsets",
            action="store_true",
            help="Commit consumer offsets when Beam finalizes a read (needs --consumer_group), "
            "so a restarted job resumes where it stopped.",
        )


@dataclass(frozen=True)
class PropertyTopics:
    """Input and output topic names of the property pipeline."""

    events: str = contract.EVENTS_TOPIC
    views: str = contract.VIEWS_TOPIC
    enriched: str = contract.ENRICHED_TOPIC
    high_value: str = contract.HIGH_VALUE_TOPIC
    zip_counts: str = contract.ZIP_COUNTS_TOPIC
    views_hourly: str = contract.VIEWS_HOURLY_TOPIC
    alerts: str = contract.ALERTS_TOPIC
    dlq: str = contract.DLQ_TOPIC
    late: str = contract.LATE_TOPIC


BACKFILL_ALLOWED_LATENESS_S = 7 * 24 * 3600


@dataclass(frozen=True)
class PropertyConfig:
    """What the property pipeline computes (no I/O, no runner); checked at construction."""

    window_size_s: int = contract.WINDOW_SIZE_S
    allowed_lateness_s: int = contract.ALLOWED_LATENESS_S
    early_firing_s: int | None = None
    gate_max_held: int = 0
    fraud_threshold: int = 50
    fraud_window_s: int = 600
    high_value_threshold: int = 500_000
    marketdata_url: str | None = None
    marketdata_timeout_s: float = 2.0
    marketdata_max_retries: int = 2
    circuit_failure_threshold: int = 5
    circuit_cooldown_s: float = 30.0
    redis_host: str | None = None
    redis_port: int = 6379
    cache_ttl_s: int = 3600
    cache_not_found_ttl_s: int = 300
    schema_registry_url: str | None = None

    def __post_init__(self) -> None:
        positive = ("window_size_s", "fraud_window_s", "marketdata_timeout_s", "cache_ttl_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise OptionError(f"--{name} must be > 0, got {getattr(self, name)}")
        for name in (
            "allowed_lateness_s",
            "fraud_threshold",
            "high_value_threshold",
            "gate_max_held",
            "cache_not_found_ttl_s",
        ):
            if getattr(self, name) < 0:
                raise OptionError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.early_firing_s is not None and self.early_firing_s <= 0:
            raise OptionError(f"--early_firing_s must be > 0 seconds, got {self.early_firing_s}")
        if self.fraud_window_s > self.window_size_s:
            raise OptionError(
                f"--fraud_window_s ({self.fraud_window_s}) must not exceed --window_size_s "
                f"({self.window_size_s}): the late gate works on the larger window"
            )
        if self.marketdata_url and not self.marketdata_url.startswith(("http://", "https://")):
            raise OptionError(
                f"--marketdata_url must start with http:// or https://, got {self.marketdata_url!r}"
            )

    # A bounded run (a backfill) replays a log whose watermark may jump past records in flight:
    # there Beam's lateness must cover the whole log (the topics keep 7 days), and the windows
    # fire once at the end of the input anyway.
    bounded: bool = False

    @property
    def beam_allowed_lateness_s(self) -> int:
        """Beam's allowed lateness for windows after the gate: streaming, the gate's window plus
        its lateness, so that no record the gate passed is dropped by Beam's watermark; bounded,
        7 days (see ``bounded``). Lateness itself is decided by the gate, never by Beam."""
        if self.bounded:
            return BACKFILL_ALLOWED_LATENESS_S
        return self.window_size_s + self.allowed_lateness_s


@dataclass(frozen=True)
class PropertyRunConfig:
    """Everything one run of the property pipeline needs: computation, topics, Kafka."""

    pipeline: PropertyConfig
    topics: PropertyTopics
    kafka: KafkaConfig
    commit_offsets: bool = False
    split_python_workers: bool = False

    @classmethod
    def from_options(cls, options: PipelineOptions) -> PropertyRunConfig:
        """The config of ``options``; ``OptionError`` naming the flag when one is wrong."""
        opts = options.view_as(PropertyOptions)
        kafka = KafkaConfig.from_options(options)
        redis_host, redis_port = None, 6379
        if opts.redis_url:
            match = re.fullmatch(r"redis://([^:/]+):(\d+)(/\d*)?", opts.redis_url)
            if not match:
                raise OptionError(f"--redis_url must be redis://host:port, got {opts.redis_url!r}")
            redis_host, redis_port = match.group(1), int(match.group(2))
        topics = PropertyTopics(
            **{f: getattr(opts, f"{f}_topic") for f in PropertyTopics.__dataclass_fields__}
        )
        names = list(vars(topics).values())
        if len(set(names)) != len(names):
            raise OptionError(f"topic flags must name distinct topics, got {names}")
        if opts.commit_offsets and not kafka.consumer_group:
            raise OptionError("--commit_offsets needs --consumer_group (offsets belong to a group)")
        if opts.split_python_workers:
            _check_split_workers(options)
        return cls(
            pipeline=PropertyConfig(
                window_size_s=opts.window_size_s,
                allowed_lateness_s=opts.allowed_lateness_s,
                early_firing_s=opts.early_firing_s,
                gate_max_held=opts.gate_max_held,
                fraud_threshold=opts.fraud_threshold,
                fraud_window_s=opts.fraud_window_s,
                high_value_threshold=opts.high_value_threshold,
                marketdata_url=opts.marketdata_url,
                marketdata_timeout_s=opts.marketdata_timeout_s,
                marketdata_max_retries=opts.marketdata_max_retries,
                circuit_failure_threshold=opts.circuit_failure_threshold,
                circuit_cooldown_s=opts.circuit_cooldown_s,
                redis_host=redis_host,
                redis_port=redis_port,
                cache_ttl_s=opts.cache_ttl_s,
                cache_not_found_ttl_s=opts.cache_not_found_ttl_s,
                schema_registry_url=opts.schema_registry_url,
                bounded=kafka.bounded,
            ),
            topics=topics,
            kafka=kafka,
            commit_offsets=opts.commit_offsets,
            split_python_workers=opts.split_python_workers,
        )


#: Environments whose Python SDK workers are processes of their own (a worker per environment).
SPLIT_WORKER_ENVIRONMENTS = ("EXTERNAL", "PROCESS", "DOCKER")


def _check_split_workers(options: PipelineOptions) -> None:
    """``--split_python_workers`` only where it gives the views half a process of its own."""
    runner = (options.view_as(StandardOptions).runner or "DirectRunner").rsplit(".", 1)[-1]
    if runner in ("DataflowRunner", "TestDataflowRunner"):
        raise OptionError(
            "--split_python_workers is for runners with one Python worker per environment "
            "(Prism, Flink); Dataflow already runs a Python worker process per core: drop it"
        )
    environment = (options.view_as(PortableOptions).environment_type or "LOOPBACK").upper()
    if environment not in SPLIT_WORKER_ENVIRONMENTS:
        raise OptionError(
            f"--split_python_workers needs Python workers that are processes, and "
            f"--environment_type={environment} runs every worker as a thread of one process: "
            "use --environment_type=EXTERNAL --environment_config=<worker pool host:port> (the "
            "local stack's: python -m runners.local up python-workers; the runner presets then "
            "fill both in when --environment_type is not given)"
        )
