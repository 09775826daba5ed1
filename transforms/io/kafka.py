"""Kafka in and out, wrapped once: the only module that imports ``apache_beam.io.kafka``.

Beam Python reads and writes Kafka through Java cross-language transforms (``KafkaIO``), expanded
by a Java expansion service and run by a Java SDK harness. Which service expands them is decided
outside the transforms: by default Beam looks the service up under the
``sdks:java:io:expansion-service:shadowJar`` key of ``--beam_services`` (set by
``runners.presets``), which Beam installs only inside ``with beam.Pipeline(options) as p:``. A
pipeline built without ``with`` (to ``run()`` and later ``cancel()`` it) must pass
``expansion_service='host:port'`` explicitly, or Beam tries to download a jar that is not served.

``ReadKafkaRecords``: ``PBegin`` -> ``PCollection[KafkaRecord]``, one element per consumed record,
bytes untouched, with topic, partition, offset, record timestamp and headers (Beam's
``with_metadata``). Element timestamps and the watermark follow ``timestamp_policy``; the default
is the record's ``CreateTime``, which the wire contract sets to the event time (capped at send
time). Beam's own default, processing time, would make a replayed backlog arrive "now" and so
misplace every event in event-time windows. No windowing or triggering is applied: elements are
in the global window; downstream transforms window them.

``WriteKafkaRecords``: ``PCollection[(key, value)]`` of bytes or None (or
``(key, value, headers)`` with ``with_headers=True``) -> one Kafka record each, on one topic.
Delivery is at-least-once (Beam's KafkaIO write without its exactly-once sink).

Consumer and producer settings pass through unchanged, so SASL_SSL, SCRAM-SHA-512, truststores
and the like work by configuration alone (values are strings, as Kafka's Java clients take them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Optional

import apache_beam as beam
from apache_beam import coders
from apache_beam.io.kafka import ReadFromKafka, WriteToKafka
from apache_beam.transforms.external import ExternalTransform, NamedTupleBasedPayloadBuilder

from transforms.io.kafka_ranges import PartitionShare, ReadKafkaRanges, resolve_ranges
from transforms.types import KafkaRecord

# The --beam_services key under which Beam looks up the Kafka IO expansion service
# (apache_beam.io.kafka.default_io_expansion_service).
EXPANSION_SERVICE_KEY = "sdks:java:io:expansion-service:shadowJar"

TIMESTAMP_POLICIES = (
    ReadFromKafka.create_time_policy,
    ReadFromKafka.log_append_time,
    ReadFromKafka.processing_time_policy,
)

# Settings the transforms own: Beam's xlang Kafka IO reads and writes raw bytes only.
_READ_OWNED_KEYS = ("key.deserializer", "value.deserializer")
_WRITE_OWNED_KEYS = ("key.serializer", "value.serializer")
_HOST_PORT = re.compile(r"^[^\s:,]+:\d{1,5}$")

# Headers need a schema'd (Row) element on the Java side: these two types give Beam the schema.
# Declared in functional form because this module's string annotations (``from __future__``)
# would hide the field types from Beam's schema inference.
KafkaHeaderRow = NamedTuple("KafkaHeaderRow", [("key", str), ("value", Optional[bytes])])  # noqa: UP014, UP045
KafkaHeaderRow.__doc__ = "One record header as Beam's ``kafka_write_with_headers`` takes it."

KafkaWriteRow = NamedTuple(  # noqa: UP014
    "KafkaWriteRow",
    [
        ("key", Optional[bytes]),  # noqa: UP045
        ("value", Optional[bytes]),  # noqa: UP045
        ("headers", Optional[Sequence[KafkaHeaderRow]]),  # noqa: UP045
    ],
)
KafkaWriteRow.__doc__ = "One record to write with headers (schema of ``kafka_write_with_headers``)."


# The configuration of KafkaIO's ``kafka_read_with_metadata`` external builder at the Flink
# runner's Beam version (2.62), for the native read: Python 2.73's ``ReadFromKafka`` sends fields
# that builder does not know (``dynamic_read_poll_interval_seconds``, ...) and its expansion fails.
# No ``consumer_polling_timeout``: the legacy read has none (KafkaIO refuses it: "Conflicting
# properties: [CONSUMER_POLLING_TIMEOUT]"); its consumer thread hands records over as they come.
NativeKafkaReadConfig = NamedTuple(  # noqa: UP014
    "NativeKafkaReadConfig",
    [
        ("consumer_config", Mapping[str, str]),
        ("topics", list[str]),
        ("key_deserializer", str),
        ("value_deserializer", str),
        ("start_read_time", Optional[int]),  # noqa: UP045
        ("commit_offset_in_finalize", bool),
        ("timestamp_policy", str),
    ],
)
NativeKafkaReadConfig.__doc__ = "Payload of the native (legacy, Flink source) Kafka read."
_BYTES_DESERIALIZER = "org.apache.kafka.common.serialization.ByteArrayDeserializer"


coders.registry.register_coder(KafkaHeaderRow, coders.RowCoder)
coders.registry.register_coder(KafkaWriteRow, coders.RowCoder)


def _check_bootstrap_servers(bootstrap_servers: str) -> str:
    if not isinstance(bootstrap_servers, str) or not bootstrap_servers.strip():
        raise ValueError(
            "bootstrap_servers must be a non-empty 'host:port[,host:port...]' string, "
            f"got {bootstrap_servers!r}"
        )
    for server in bootstrap_servers.split(","):
        if not _HOST_PORT.match(server.strip()):
            raise ValueError(
                f"bootstrap_servers entry {server!r} is not 'host:port'; "
                "give a comma-separated list such as 'localhost:9092,localhost:9093'"
            )
    return bootstrap_servers


def _check_client_config(
    config: Mapping[str, str] | None, name: str, bootstrap_servers: str, owned: Iterable[str]
) -> dict[str, str]:
    """The client config as sent to Java: our bootstrap servers added, everything else unchanged."""
    config = dict(config or {})
    for key, value in config.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(
                f"{name} must map str to str (Kafka's Java client takes strings), "
                f"got {key!r}: {value!r}; quote numbers and booleans, e.g. 'true'"
            )
    for key in owned:
        if key in config:
            raise ValueError(
                f"{name} sets {key!r}, but the transform reads and writes raw bytes "
                "and owns that setting; remove it and decode/encode in a downstream transform"
            )
    given = config.get("bootstrap.servers")
    if given is not None and given != bootstrap_servers:
        raise ValueError(
            f"{name}['bootstrap.servers'] is {given!r} but bootstrap_servers is "
            f"{bootstrap_servers!r}; give the servers once, as bootstrap_servers"
        )
    config["bootstrap.servers"] = bootstrap_servers
    return config


def _check_optional_positive(value: int | None, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    return value


def _check_optional_epoch_ms(value: int | None, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(
            f"{name} must be milliseconds since the epoch (an int >= 0) or None, got {value!r}"
        )
    return value


def _check_expansion_service(expansion_service: Any) -> Any:
    if isinstance(expansion_service, str) and not _HOST_PORT.match(expansion_service):
        raise ValueError(
            f"expansion_service must be 'host:port' of a running Beam expansion service, "
            f"got {expansion_service!r}"
        )
    return expansion_service


def _check_native_read(
    native_expansion_service: str | None, *, poll_timeout_s: int | None, bounded: bool
) -> str | None:
    """The native read's expansion service, checked against what the legacy read can do."""
    if native_expansion_service is None:
        return None
    if not isinstance(native_expansion_service, str) or not _HOST_PORT.match(
        native_expansion_service
    ):
        raise ValueError(
            "native_expansion_service must be 'host:port' of Beam's expansion service at the "
            f"Flink runner's version, got {native_expansion_service!r}"
        )
    if poll_timeout_s is not None:
        raise ValueError(
            "poll_timeout_s is a setting of the SDF read; the native read has no poll timeout "
            "(KafkaIO refuses it): give one of them"
        )
    if bounded:
        raise ValueError(
            "the native read is for unbounded (streaming) reads: drop the stop condition "
            "(max_num_records, max_read_time_s, stop_read_time_ms, stop_at_current_end) or "
            "the native read"
        )
    return native_expansion_service


def record_from_row(row: Any) -> KafkaRecord:
    """A ``KafkaRecord`` from the Row of Beam's ``kafka_read_with_metadata`` transform.

    The Row's fields (KafkaIO 2.73): topic, partition, offset, timestamp (ms), timestampTypeId,
    timestampTypeName, key, value, headers (a list of Rows with key and value, or None).
    """
    headers = tuple((header.key, header.value) for header in (row.headers or ()))
    return KafkaRecord(
        key=row.key,
        value=row.value,
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        timestamp_ms=row.timestamp,
        headers=headers,
    )


def key_value_of(element: tuple[bytes | None, bytes | None]) -> tuple[bytes | None, bytes | None]:
    """Checks that an element to write is a ``(key, value)`` pair of bytes or None.

    A None value writes a tombstone (the delete marker of compacted topics).
    """
    key, value = element
    for name, data in (("key", key), ("value", value)):
        if data is not None and not isinstance(data, bytes):
            raise TypeError(f"Kafka record {name} must be bytes or None, got {type(data).__name__}")
    return key, value


def write_row_of(
    element: tuple[bytes | None, bytes, Sequence[tuple[str, bytes | None]]],
) -> KafkaWriteRow:
    """The Row Beam's headers-aware write takes, from ``(key, value, [(name, bytes), ...])``."""
    key, value = key_value_of((element[0], element[1]))
    headers = [KafkaHeaderRow(key=name, value=data) for name, data in element[2]]
    return KafkaWriteRow(key=key, value=value, headers=headers)


class ReadKafkaRecords(beam.PTransform[beam.pvalue.PBegin, beam.PCollection[KafkaRecord]]):
    """Reads topics as ``KafkaRecord`` elements, metadata kept, bytes untouched.

    Time: element timestamp = the record's ``timestamp_policy`` time (default ``CreateTime``); the
    watermark follows the same policy per partition. Global window, no trigger.

    Unbounded unless a stop condition is given: ``max_num_records`` (Beam splits it evenly across
    partitions and waits forever for a partition holding fewer than its share, so use it only with
    balanced partitions), ``max_read_time_s`` (stop after that many seconds of reading) or
    ``stop_read_time_ms`` (each partition stops before its first record with timestamp >= that
    time, or at its current end when it holds no such record) or ``stop_at_current_end`` (each
    partition stops at its end as of pipeline construction). The last two resolve every
    partition's offset range when the pipeline is built and read exactly those ranges
    (``transforms.io.kafka_ranges``): Beam's KafkaIO 2.73 takes no stop offsets, and its stop-time
    read fails on a partition without a record at or after the stop time. Those readers take
    their security settings from ``security_file`` (a Kafka client properties file) when given.
    ``poll_timeout_s`` is KafkaIO's ``consumer_polling_timeout`` (whole seconds, >= 1; Beam's
    default 2): the Java read polls a partition for up to this long before it returns what it read
    to the runner, which bounds how long a record waits in the read (docs/performance.md).
    ``start_read_time_ms`` starts each partition at its first record at or after that time;
    otherwise the consumer's committed offset or ``auto.offset.reset`` decides.
    ``partition_share=(residues, count)`` reads only the partitions ``p`` with ``p % count`` in
    ``residues`` (``kafka_ranges.PartitionShare``): reads whose residues cover ``0..count-1``
    once, each its own step (in a worker of its own, say), read every partition once between
    them. Range reads only.

    ``native_expansion_service`` ('host:port' of Beam's expansion service at the Flink runner's
    version, started with ``use_deprecated_read``): the unbounded read becomes KafkaIO's legacy
    ``UnboundedSource``, which Beam's Flink runner runs as a native Flink source (a consumer
    thread per subtask emitting records as they arrive, instead of the SDF read's poll of
    ``poll_timeout_s`` per partition and bundle). Flink only, unbounded reads only, no
    ``poll_timeout_s``. Its CreateTime watermark is the minimum over the subtask's partitions,
    and a partition that has delivered no record since the job started holds it back (KafkaIO's
    idle-partition rule needs one record first): event-time windows fire only once every
    partition read has had a record (docs/performance.md, Latency).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        consumer_config: Mapping[str, str] | None = None,
        max_num_records: int | None = None,
        max_read_time_s: int | None = None,
        start_read_time_ms: int | None = None,
        stop_read_time_ms: int | None = None,
        commit_offset_in_finalize: bool = False,
        timestamp_policy: str = ReadFromKafka.create_time_policy,
        expansion_service: Any = None,
        stop_at_current_end: bool = False,
        security_file: str | None = None,
        poll_timeout_s: int | None = None,
        native_expansion_service: str | None = None,
        partition_share: tuple[tuple[int, ...], int] | None = None,
    ) -> None:
        super().__init__()
        self._bootstrap_servers = _check_bootstrap_servers(bootstrap_servers)
        self._partition_share = None
        if partition_share is not None:
            if stop_read_time_ms is None and not stop_at_current_end:
                raise ValueError(
                    "partition_share needs a read of resolved ranges: give stop_read_time_ms "
                    "or stop_at_current_end=True (--stop_read_time_ms or --backfill)"
                )
            self._partition_share = PartitionShare(*partition_share).check()
        self._native_expansion_service = _check_native_read(
            native_expansion_service,
            poll_timeout_s=poll_timeout_s,
            bounded=any(
                v is not None for v in (max_num_records, max_read_time_s, stop_read_time_ms)
            )
            or stop_at_current_end,
        )
        self._poll_timeout_s = _check_optional_positive(poll_timeout_s, "poll_timeout_s")
        if (
            isinstance(topics, str)
            or not topics
            or not all(isinstance(topic, str) and topic for topic in topics)
        ):
            raise ValueError(
                f"topics must be a non-empty list of topic names, got {topics!r} "
                "(for one topic write ['name'], not 'name')"
            )
        self._topics = list(topics)
        self._consumer_config = _check_client_config(
            consumer_config, "consumer_config", bootstrap_servers, _READ_OWNED_KEYS
        )
        self._max_num_records = _check_optional_positive(max_num_records, "max_num_records")
        self._max_read_time_s = _check_optional_positive(max_read_time_s, "max_read_time_s")
        self._start_read_time_ms = _check_optional_epoch_ms(
            start_read_time_ms, "start_read_time_ms"
        )
        self._stop_read_time_ms = _check_optional_epoch_ms(stop_read_time_ms, "stop_read_time_ms")
        if (
            start_read_time_ms is not None
            and stop_read_time_ms is not None
            and stop_read_time_ms <= start_read_time_ms
        ):
            raise ValueError(
                f"stop_read_time_ms ({stop_read_time_ms}) must be after "
                f"start_read_time_ms ({start_read_time_ms})"
            )
        if commit_offset_in_finalize and not self._consumer_config.get("group.id"):
            raise ValueError(
                "commit_offset_in_finalize=True needs a consumer group: set "
                "consumer_config['group.id']"
            )
        self._commit_offset_in_finalize = bool(commit_offset_in_finalize)
        if timestamp_policy not in TIMESTAMP_POLICIES:
            raise ValueError(
                f"timestamp_policy must be one of {', '.join(TIMESTAMP_POLICIES)}, "
                f"got {timestamp_policy!r}"
            )
        self._timestamp_policy = timestamp_policy
        self._expansion_service = _check_expansion_service(expansion_service)
        self._stop_at_current_end = bool(stop_at_current_end)
        self._security_file = security_file

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection[KafkaRecord]:
        if self._stop_read_time_ms is not None or self._stop_at_current_end:
            # Offsets resolved now, at construction (i.e. submission); see kafka_ranges.
            ranges = resolve_ranges(
                self._consumer_config,
                self._topics,
                stop_time_ms=self._stop_read_time_ms,
                start_time_ms=self._start_read_time_ms,
                security_file=self._security_file,
                share=self._partition_share,
            )
            return pbegin | "ReadRanges" >> ReadKafkaRanges(
                ranges,
                self._consumer_config,
                security_file=self._security_file,
                commit=self._commit_offset_in_finalize,
            )
        if self._native_expansion_service is not None:
            native = ExternalTransform(
                ReadFromKafka.URN_WITH_METADATA,
                NamedTupleBasedPayloadBuilder(
                    NativeKafkaReadConfig(
                        consumer_config=self._consumer_config,
                        topics=self._topics,
                        key_deserializer=_BYTES_DESERIALIZER,
                        value_deserializer=_BYTES_DESERIALIZER,
                        start_read_time=self._start_read_time_ms,
                        commit_offset_in_finalize=self._commit_offset_in_finalize,
                        timestamp_policy=self._timestamp_policy,
                    )
                ),
                self._native_expansion_service,
            )
            return (
                pbegin
                | "ReadFromKafkaNative" >> native
                | "ToKafkaRecord" >> beam.Map(record_from_row).with_output_types(KafkaRecord)
            )
        read = ReadFromKafka(
            consumer_config=self._consumer_config,
            topics=self._topics,
            start_read_time=self._start_read_time_ms,
            max_num_records=self._max_num_records,
            max_read_time=self._max_read_time_s,
            commit_offset_in_finalize=self._commit_offset_in_finalize,
            timestamp_policy=self._timestamp_policy,
            with_metadata=True,
            expansion_service=self._expansion_service,
            **(
                {"consumer_polling_timeout": self._poll_timeout_s}
                if self._poll_timeout_s is not None
                else {}
            ),
        )
        return (
            pbegin
            | "ReadFromKafka" >> read
            | "ToKafkaRecord" >> beam.Map(record_from_row).with_output_types(KafkaRecord)
        )


class WriteKafkaRecords(beam.PTransform[beam.PCollection[Any], beam.pvalue.PDone]):
    """Writes each ``(key, value)`` bytes pair as one record to ``topic``.

    With ``with_headers=True`` elements are ``(key, value, [(header_name, header_bytes), ...])``
    and go through Beam's ``kafka_write_with_headers`` transform (KafkaIO 2.73). Key and value
    are bytes or None (a None value is a tombstone). Windowing and timestamps of the input do
    not matter: each element is written as it arrives; the Kafka record timestamp is the
    producer's send time.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        producer_config: Mapping[str, str] | None = None,
        with_headers: bool = False,
        expansion_service: Any = None,
    ) -> None:
        super().__init__()
        self._bootstrap_servers = _check_bootstrap_servers(bootstrap_servers)
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"topic must be a non-empty topic name, got {topic!r}")
        self._topic = topic
        self._producer_config = _check_client_config(
            producer_config, "producer_config", bootstrap_servers, _WRITE_OWNED_KEYS
        )
        self._with_headers = bool(with_headers)
        self._expansion_service = _check_expansion_service(expansion_service)

    def expand(self, records: beam.PCollection[Any]) -> beam.pvalue.PDone:
        write = WriteToKafka(
            producer_config=self._producer_config,
            topic=self._topic,
            with_headers=self._with_headers,
            expansion_service=self._expansion_service,
        )
        if self._with_headers:
            # The Java side needs a schema'd Row: the registered RowCoder of KafkaWriteRow.
            rows = records | "ToWriteRow" >> beam.Map(write_row_of).with_output_types(KafkaWriteRow)
        else:
            # The Java side needs KV<byte[], byte[]>: the type hint gives Beam that coder.
            rows = records | "ToKeyValueBytes" >> beam.Map(key_value_of).with_output_types(
                tuple[Optional[bytes], Optional[bytes]]  # noqa: UP045
            )
        return rows | "WriteToKafka" >> write
