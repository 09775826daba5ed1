"""``DecodeAvro``: ``KafkaRecord`` in, ``Decoded`` out, undecodable records as ``DeadLetter``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import apache_beam as beam

from schemas import CATALOG, Catalog, SchemaEntry, SchemaNotFoundError
from transforms import metrics
from transforms.codec.avro import AvroDecoder, schema_entry
from transforms.codec.errors import (
    STAGE,
    DecodeError,
)
from transforms.codec.writers import CatalogSchemas, RegistrySchemas, WriterSchemas
from transforms.dead_letter import DeadLetter
from transforms.types import Decoded, KafkaRecord


class DecodeResult(NamedTuple):
    """``decoded``: one ``Decoded`` per readable record; ``dead_letters``: one ``DeadLetter``
    (stage ``decode``) per other record, with its original bytes."""

    decoded: beam.PCollection[Decoded]
    dead_letters: beam.PCollection[DeadLetter]


class _DecodeFn(beam.DoFn):
    """Decodes each record's value; raises ``DecodeError`` for the exception handler to route."""

    def __init__(
        self,
        reader: SchemaEntry,
        catalog: Catalog,
        registry_conf: Mapping[str, Any] | None,
        registry_client_factory: Callable[[dict[str, Any]], Any] | None,
    ) -> None:
        self._reader = reader
        self._catalog = catalog
        self._registry_conf = registry_conf
        self._registry_client_factory = registry_client_factory
        self._client: Any = None

    def setup(self) -> None:
        # The registry client (an HTTP session and its cache) is made here, once per DoFn
        # instance, and never pickled with the DoFn.
        writer_schemas: WriterSchemas
        if self._registry_conf is None:
            writer_schemas = CatalogSchemas(self._catalog)
        else:
            factory = self._registry_client_factory
            if factory is None:
                from confluent_kafka.schema_registry import SchemaRegistryClient

                factory = SchemaRegistryClient.new_client
            self._client = factory(dict(self._registry_conf))
            writer_schemas = RegistrySchemas(self._client)
        self._decoder = AvroDecoder(self._reader, writer_schemas)
        self._decoded = metrics.counter(metrics.DECODED)
        self._value_bytes = metrics.distribution(metrics.DECODED_VALUE_BYTES)

    def process(self, record: KafkaRecord):
        schema_id, payload = self._decoder.decode(record.value)
        self._decoded.inc()
        self._value_bytes.update(len(record.value))
        yield Decoded(payload, schema_id, record)

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def undecodable_to_dead_letter(failed: tuple[KafkaRecord, tuple[type, str, list[str]]]):
    """``with_exception_handling``'s ``(KafkaRecord, (type, repr, traceback))`` of a record
    that did not decode, as its ``DeadLetter`` (stage ``decode``)."""
    record, error = failed
    return DeadLetter.from_error(STAGE, record, error)


class DecodeAvro(beam.PTransform[beam.PCollection[KafkaRecord], DecodeResult]):
    """Decodes Confluent wire-format Avro values into ``Decoded`` records of one reader schema.

    Args:
      reader_schema: what every value is read as: a record name in ``catalog`` (``PropertyEvent``
        or ``property.events.PropertyEvent``: its latest version) or a catalog entry (a pinned
        version, e.g. ``catalog.version("PropertyEvent", 1)``).
      catalog: the local schemas; writer schemas come from here when no registry is configured.
      schema_registry_url: a Confluent-compatible registry (``http(s)://...``, or ``mock://...``
        for confluent-kafka's in-process mock); writer schemas then come only from it.
      schema_registry_conf: further ``SchemaRegistryClient`` settings (auth, TLS, timeouts).
      registry_client_factory: makes the client from the conf dict in ``setup()`` (default
        ``SchemaRegistryClient.new_client``); must be picklable. Tests use it to seed a mock.
      threshold: the largest fraction of undecodable records tolerated before the job fails
        (Beam's ``with_exception_handling`` threshold); 1.0 never fails. Below 1.0 it counts per
        window of the input, so an unbounded input in the global window needs a windowed input.

    Every malformed value (null, short, bad magic byte, unknown id, incompatible writer schema,
    corrupt or trailing body) becomes a ``DeadLetter`` with stage ``decode`` and ``error_type``
    the ``DecodeError`` subclass name; nothing fails the bundle except infrastructure errors
    (an unreachable registry). Element-wise: no windowing, triggers or state.
    """

    def __init__(
        self,
        reader_schema: str | SchemaEntry,
        *,
        catalog: Catalog = CATALOG,
        schema_registry_url: str | None = None,
        schema_registry_conf: Mapping[str, Any] | None = None,
        registry_client_factory: Callable[[dict[str, Any]], Any] | None = None,
        threshold: float = 1.0,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        try:
            self._reader = schema_entry(reader_schema, catalog)
        except SchemaNotFoundError as exc:
            raise ValueError(f"reader_schema: {exc}") from exc
        if schema_registry_url is not None and not schema_registry_url.startswith(
            ("http://", "https://", "mock://")
        ):
            raise ValueError(
                "schema_registry_url must start with http://, https:// or mock://, got "
                f"{schema_registry_url!r}"
            )
        if schema_registry_conf and schema_registry_url is None:
            raise ValueError("schema_registry_conf is given without schema_registry_url; set both")
        if schema_registry_conf and "url" in schema_registry_conf:
            raise ValueError("pass the registry URL as schema_registry_url, not in the conf")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self._catalog = catalog
        self._registry_conf = (
            None
            if schema_registry_url is None
            else {"url": schema_registry_url, **dict(schema_registry_conf or {})}
        )
        self._registry_client_factory = registry_client_factory
        self._threshold = threshold

    @property
    def threshold(self) -> float:
        return self._threshold

    def decode_fn(self) -> beam.DoFn:
        """The decoding DoFn on its own (it raises ``DecodeError`` for a malformed record), for
        ``transforms.ingest.DecodeAndValidate``, which runs it and a validation in one step."""
        return _DecodeFn(
            self._reader, self._catalog, self._registry_conf, self._registry_client_factory
        )

    def expand(self, records: beam.PCollection[KafkaRecord]) -> DecodeResult:
        results = records | "Decode" >> beam.ParDo(self.decode_fn()).with_exception_handling(
            main_tag="decoded",
            dead_letter_tag="undecodable",
            exc_class=DecodeError,
            threshold=self._threshold,
        )
        dead_letters = (
            results["undecodable"]
            | "ToDeadLetters" >> beam.Map(undecodable_to_dead_letter)
            | "CountDeadLetters" >> metrics.CountDeadLetters()
        )
        return DecodeResult(decoded=results["decoded"], dead_letters=dead_letters)
