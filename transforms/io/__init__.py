"""Sources and sinks: the only package that imports Beam's Kafka IO (``transforms.io.kafka``)."""

from transforms.io.kafka import ReadKafkaRecords, WriteKafkaRecords

__all__ = ["ReadKafkaRecords", "WriteKafkaRecords"]
