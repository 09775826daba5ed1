"""Kafka's options (where, how to connect, when a bounded run stops) and ``KafkaConfig``, the
checked settings of one run built from them once."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from apache_beam.options.pipeline_options import (
    CrossLanguageOptions,
    PipelineOptions,
    StandardOptions,
)

from pipelines.options.errors import OptionError
from transforms.io.client_config import (
    ClientConfigError,
    is_secret,
    java_client_config,
    load_client_security,
)
from transforms.io.kafka import EXPANSION_SERVICE_KEY
from transforms.io.record_size import max_record_bytes

#: The Kafka read implementations of ``--kafka_read``.
KAFKA_READS = ("sdf", "native")
#: The Kafka write implementations of ``--kafka_write``.
KAFKA_WRITES = ("auto", "java", "librdkafka")
#: Runners that run the native read (Beam's Flink runner translates the legacy read into a
#: Flink source); by the short name of ``--runner``.
NATIVE_READ_RUNNERS = ("FlinkRunner", "PortableRunner")
_HOST_PORT = re.compile(r"^[^\s:,]+:\d{1,5}$")
_PROPERTY = re.compile(r"^([A-Za-z0-9_.\-]+)=(.*)$", re.DOTALL)


# Set through their own flags, so that one value cannot come from two places.
_PROPERTIES_WITH_FLAGS = {
    "bootstrap.servers": "--bootstrap_servers",
    "group.id": "--consumer_group",
    "auto.offset.reset": "--offset_reset",
}


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
            "--kafka_read",
            choices=list(KAFKA_READS),
            default="sdf",
            help="How a streaming Flink run reads Kafka. 'sdf' (default): Beam KafkaIO's "
            "splittable read, records leave each partition's poll when it ends. 'native': "
            "KafkaIO's legacy unbounded read, which Beam's Flink runner runs as a native Flink "
            "source (records flow as they arrive: sub-second latency; docs/performance.md, "
            "Latency). Needs the Flink runner, an unbounded read and Beam's expansion service "
            "at the Flink runner's version (python -m runners.local up "
            "flink-expansion-service); event-time windows fire only once every partition "
            "read has delivered a record.",
        )
        parser.add_argument(
            "--kafka_write",
            choices=list(KAFKA_WRITES),
            default="auto",
            help="How the outputs are written. 'java': Beam KafkaIO's write, run by a Java SDK "
            "worker. 'librdkafka': a confluent-kafka producer in the Python worker, the same "
            "delivery (at-least-once: each bundle ends when its records are acknowledged) "
            "without moving every output record to a Java worker (docs/performance.md). "
            "'auto' (default): librdkafka when the read is librdkafka too (--backfill, "
            "--stop_read_time_ms: the run needs no Java at all), else java. With librdkafka, "
            "--kafka_property names are librdkafka's (max.request.size is translated).",
        )
        parser.add_argument(
            "--kafka_native_expansion_service",
            help="'host:port' of the expansion service of --kafka_read=native. Filled in from "
            "the local stack when not given.",
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
    native_expansion_service: str | None = None
    """``--kafka_read=native``: the expansion service of the native (Flink source) read."""
    write: str = "java"
    """'java' (Beam KafkaIO's write) or 'librdkafka' (the Python worker's producer):
    ``--kafka_write``, its 'auto' resolved (librdkafka with the range read, else java)."""

    @property
    def bounded(self) -> bool:
        """True when the read has a stop condition (the run ends by itself)."""
        return self.backfill or any(
            v is not None for v in (self.max_records, self.max_read_time_s, self.stop_read_time_ms)
        )

    @property
    def range_read(self) -> bool:
        """True when the read is the librdkafka read of offset ranges resolved at construction
        (``--backfill``, ``--stop_read_time_ms``; ``transforms.io.kafka_ranges``)."""
        return self.backfill or self.stop_read_time_ms is not None

    def consumer_config(self) -> dict[str, str]:
        """Consumer properties: the extra properties plus group id and offset reset.

        With a group, ``enable.auto.commit`` is ``false`` unless given: the Kafka consumers of
        Beam's KafkaIO read (2.73, cross-language) otherwise run with Kafka's default ``true``
        and commit every position they polled, before the records are processed or written
        (seen: a run refused WRITE on an output committed offsets 111 and 393 of records it never
        wrote; a restart in that group would skip them). Offsets are committed only by
        ``--commit_offsets``, when Beam finalizes a read."""
        config = dict(self.properties)
        config["auto.offset.reset"] = self.offset_reset
        if self.consumer_group:
            config["group.id"] = self.consumer_group
            config.setdefault("enable.auto.commit", "false")
        return config

    @property
    def max_record_bytes(self) -> int:
        """The largest record the run's producers send (``max.request.size``, checked by
        ``from_options``); a larger output record is dead-lettered before the write."""
        return max_record_bytes(self.properties)

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
        try:
            max_record_bytes(properties)
        except ValueError as exc:
            raise OptionError(f"--kafka_property {exc}") from None
        native_service = _native_read_service(options, kafka)
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
            native_expansion_service=native_service,
            write=_write(kafka),
        )


def _write(kafka: KafkaOptions) -> str:
    """``--kafka_write`` with 'auto' resolved: a run whose read is the librdkafka range read
    (``--backfill``, ``--stop_read_time_ms``) writes with librdkafka too, so it runs no Java at
    all (measured cheaper and quicker to start, docs/performance.md); every other run (streaming,
    ``--max_records``, ``--max_read_time_s``: Beam's Java read) with Beam's Java write, the one
    the fault suite has broken brokers and proxies under."""
    if kafka.kafka_write != "auto":
        return kafka.kafka_write
    range_read = kafka.backfill or kafka.stop_read_time_ms is not None
    return "librdkafka" if range_read else "java"


def _native_read_service(options: PipelineOptions, kafka: KafkaOptions) -> str | None:
    """The native read's expansion service when ``--kafka_read=native`` (None for ``sdf``), or
    ``OptionError`` saying what the run lacks for it."""
    if kafka.kafka_read != "native":
        if kafka.kafka_native_expansion_service:
            raise OptionError(
                "--kafka_native_expansion_service is for --kafka_read=native: drop it or add "
                "--kafka_read=native"
            )
        return None
    runner = (options.view_as(StandardOptions).runner or "DirectRunner").rsplit(".", 1)[-1]
    if runner not in NATIVE_READ_RUNNERS:
        raise OptionError(
            f"--kafka_read=native runs on Beam's Flink runner only (it becomes a Flink source), "
            f"not on {runner}: use --runner=FlinkRunner or drop --kafka_read=native"
        )
    if is_bounded_run(options):
        raise OptionError(
            "--kafka_read=native is for streaming reads: drop --max_records, --max_read_time_s, "
            "--stop_read_time_ms and --backfill, or --kafka_read=native"
        )
    if kafka.kafka_poll_timeout_s is not None:
        raise OptionError(
            "--kafka_poll_timeout_s is a setting of the SDF read; the native read has no poll "
            "timeout: drop it with --kafka_read=native"
        )
    service = kafka.kafka_native_expansion_service
    if not service:
        raise OptionError(
            "--kafka_read=native needs Beam's expansion service at the Flink runner's version: "
            "start it with `python -m runners.local up flink-expansion-service` (the runner "
            "presets then fill in --kafka_native_expansion_service) or give "
            "--kafka_native_expansion_service=host:port"
        )
    if not _HOST_PORT.match(service):
        raise OptionError(f"--kafka_native_expansion_service must be 'host:port', got {service!r}")
    return service


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
