"""The pipelines' command-line options, and the frozen configs built from them once.

Each ``PipelineOptions`` subclass declares flags (units in the names: ``_s``, ``_ms``); each config
dataclass is built from the parsed options once, checks them with errors that name the flag, and
is what pipelines hand to transforms. Transforms never see options.

Parsing never reads the running stack: the entry point completes argv with the runner presets
first (``pipelines.launch.complete_argv``: e.g. ``--bootstrap_servers`` of the local stack when
the user gives none), so ``python -m pipelines.passthrough --runner=PrismRunner`` needs no address.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from apache_beam.options.pipeline_options import CrossLanguageOptions, PipelineOptions

from schemas import contract
from transforms.io.client_config import (
    ClientConfigError,
    is_secret,
    java_client_config,
    load_client_security,
)
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
            "--kafka_property sasl.mechanism=SCRAM-SHA-512. Never a secret: those go in "
            "--kafka_config_file.",
        )
        parser.add_argument(
            "--kafka_config_file",
            help="Kafka client properties file (security.protocol, sasl.*, ssl.*: the file your "
            "cluster's clients use), for every consumer and producer of the run. Secret values "
            "(sasl.jaas.config, *.password) stay in the file: the Java clients read them from it "
            "on the worker (Kafka's FileConfigProvider), so the file must exist at this path "
            "there. Filled in from a secured local stack (runners.local up --secure).",
        )
        parser.add_argument(
            "--skip_kafka_access_check",
            action="store_true",
            help="Do not check, before submitting, that the --kafka_config_file user may read "
            "the inputs and write the outputs (the check connects from this machine; Dataflow "
            "runs skip it).",
        )
        parser.add_argument(
            "--kafka_poll_timeout_s",
            type=int,
            default=None,
            help="Seconds the streaming Kafka read polls a partition before it hands the records "
            "it has to the runner (Beam KafkaIO's consumer_polling_timeout; whole seconds, >= 1; "
            "default: the runner preset's, else Beam's 2). Each partition's records reach the "
            "pipeline at most this long after their append (docs/performance.md, Latency).",
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
            "or after this time (ms since the epoch), or at its current end when it holds no "
            "such record (empty or quiet partitions). The offsets are resolved when the "
            "pipeline is built; nothing is written to the topics.",
        )
        parser.add_argument(
            "--backfill",
            action="store_true",
            help="Bounded run: read every partition up to its current end (as of submission), "
            "then finish.",
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
    config_file: str | None = None
    """The client properties file the security settings in ``properties`` come from."""
    check_access: bool = True
    """Check the user's topic ACLs from the launching machine before submitting."""
    backfill: bool = False
    poll_timeout_s: int | None = None
    """KafkaIO's ``consumer_polling_timeout`` (s) of the streaming read; None: Beam's 2 s."""

    @property
    def bounded(self) -> bool:
        """True when the read has a stop condition (the run ends by itself)."""
        return self.backfill or any(
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
        config_file = None
        if kafka.kafka_config_file:
            try:
                security = load_client_security(kafka.kafka_config_file)
            except ClientConfigError as exc:
                raise OptionError(f"--kafka_config_file: {exc}") from None
            config_file = str(security.path)
            from_file = java_client_config(security)
            both = sorted(set(from_file) & set(properties))
            if both:
                raise OptionError(
                    f"--kafka_property {', '.join(both)} also set in --kafka_config_file "
                    f"{config_file}: give each setting once"
                )
            given = security.bootstrap_servers
            if given and given != kafka.bootstrap_servers:
                raise OptionError(
                    f"--kafka_config_file {config_file} has bootstrap.servers={given} but "
                    f"--bootstrap_servers is {kafka.bootstrap_servers}: make them agree (or "
                    "remove it from the file)"
                )
            properties = {**from_file, **properties}
        for name in ("max_records", "max_read_time_s", "kafka_poll_timeout_s"):
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
        if kafka.max_records is not None and kafka.kafka_poll_timeout_s is not None:
            raise OptionError(
                "--max_records and --kafka_poll_timeout_s cannot go together: Beam's Kafka read "
                "counts records with its legacy implementation, which has no poll timeout; drop "
                "--kafka_poll_timeout_s (or stop with --stop_read_time_ms / --backfill instead)"
            )
        if kafka.backfill:
            others = [
                f"--{name}"
                for name in ("max_records", "max_read_time_s", "stop_read_time_ms")
                if getattr(kafka, name) is not None
            ]
            if others:
                raise OptionError(
                    f"--backfill (up to the current end of every partition) and {others[0]} "
                    "are two stop conditions: give one"
                )
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
            config_file=config_file,
            check_access=not kafka.skip_kafka_access_check,
            backfill=bool(kafka.backfill),
            poll_timeout_s=kafka.kafka_poll_timeout_s,
        )


def is_bounded_run(options: PipelineOptions) -> bool:
    """True when the options give the Kafka read a stop condition (the run ends by itself)."""
    kafka = options.view_as(KafkaOptions)
    return bool(kafka.backfill) or any(
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
        if is_secret(key):
            raise OptionError(
                f"--kafka_property {key}=... puts a secret on the command line (visible in ps, in"
                " Beam's logged options and in the job's configuration): put it in a client"
                " properties file given with --kafka_config_file"
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
            "--schema_registry_url",
            default=None,
            help="Confluent-compatible schema registry; none: the schemas/ catalog (ids 1, 2 "
            "for the inputs).",
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
                schema_registry_url=opts.schema_registry_url,
                bounded=kafka.bounded,
            ),
            topics=topics,
            kafka=kafka,
            commit_offsets=opts.commit_offsets,
        )
