"""A pipeline's Kafka read and write, built from its checked ``KafkaConfig``, so that every
pipeline reads (bounds, security, poll timeout) and writes the same way.

The expansion service is passed explicitly: Beam applies ``--beam_services`` only inside
``with beam.Pipeline()``, and a pipeline may be run without it (``start``).
"""

from __future__ import annotations

from pipelines.options import KafkaConfig
from transforms.io.kafka import ReadKafkaRecords, WriteKafkaRecords
from transforms.io.kafka_produce import ProduceKafkaRecords


def read_topic(
    kafka: KafkaConfig,
    topic: str,
    *,
    commit_offsets: bool = False,
    partition_share: tuple[tuple[int, ...], int] | None = None,
) -> ReadKafkaRecords:
    """Every record of ``topic`` as ``KafkaRecord``, within the run's bounds; ``commit_offsets``
    commits the consumer group's offsets when Beam finalizes a read; ``partition_share=(residues,
    n)``: only the partitions with ``p % n`` in ``residues`` (range reads: ``kafka.range_read``)."""
    return ReadKafkaRecords(
        bootstrap_servers=kafka.bootstrap_servers,
        topics=[topic],
        consumer_config=kafka.consumer_config(),
        max_num_records=kafka.max_records,
        max_read_time_s=kafka.max_read_time_s,
        start_read_time_ms=kafka.start_read_time_ms,
        stop_read_time_ms=kafka.stop_read_time_ms,
        stop_at_current_end=kafka.backfill,
        security_file=kafka.config_file,
        commit_offset_in_finalize=commit_offsets,
        poll_timeout_s=kafka.poll_timeout_s,
        expansion_service=kafka.expansion_service,
        native_expansion_service=kafka.native_expansion_service,
        partition_share=partition_share,
    )


def write_topic(kafka: KafkaConfig, topic: str) -> WriteKafkaRecords | ProduceKafkaRecords:
    """``(key, value)`` byte pairs written to ``topic`` with the run's producer settings, by
    Beam's Java KafkaIO write or (``--kafka_write=librdkafka``) the Python worker's producer."""
    if kafka.write == "librdkafka":
        properties = {
            **kafka.producer_config(),
            "bootstrap.servers": kafka.bootstrap_servers,
            # The limit the size check before the write uses (librdkafka's own default,
            # 1 000 000, is below Kafka's 1 048 576): what passes the check is sent.
            "max.request.size": str(kafka.max_record_bytes),
        }
        return ProduceKafkaRecords(topic, properties, security_file=kafka.config_file)
    return WriteKafkaRecords(
        bootstrap_servers=kafka.bootstrap_servers,
        topic=topic,
        producer_config=kafka.producer_config(),
        expansion_service=kafka.expansion_service,
    )
