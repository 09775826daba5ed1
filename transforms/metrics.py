"""Stable metric names shared by every transform, and a pass-through that counts dead letters.

All counters live in one namespace, ``NAMESPACE``; names are constants here (or built by the
functions below for per-stage / per-rule counters) so dashboards and tests never spell them by
hand. Renaming one is a breaking change for whoever monitors the job.

Per-element dynamic names (``dead_lettered.<stage>.<error_type>``) are bounded in number: stages
and error types are fixed sets in the code (exception classes, validation rule ids).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics.metric import Metrics

from transforms.dead_letter import DeadLetter

NAMESPACE = "property_streams"

# Counters (one per element unless said otherwise).
DECODED = "decoded"  # records decoded by DecodeAvro
ENCODED = "encoded"  # records encoded by EncodeAvro
VALID = "valid"  # records that passed ValidateEvents / ValidateViews
DEAD_LETTERED = "dead_lettered"  # all dead letters, every stage
LATE = "late"  # records routed to the late output
ALERTS = "alerts"  # alerts emitted
ENRICHMENT_FALLBACKS = "enrichment_fallbacks"  # enrichment answered by the fallback

# Distributions.
DECODED_VALUE_BYTES = "decoded_value_bytes"  # wire size of each decoded value


def dead_lettered(stage: str, error_type: str | None = None) -> str:
    """Counter name of the dead letters of one stage (``dead_lettered.decode``), or of one error
    type within it (``dead_lettered.decode.BadMagicByteError``)."""
    if error_type is None:
        return f"{DEAD_LETTERED}.{stage}"
    return f"{DEAD_LETTERED}.{stage}.{error_type}"


def encoded(schema_name: str) -> str:
    """Counter name of the records encoded with one schema (``encoded.ZipCount``): the records
    out of the pipeline per output, each output having its own schema.

    Why per schema as well as ``encoded``: a runner may report a step's counters per fused stage
    rather than per step. Beam's Flink runner names a Flink metric by namespace and name only, so
    two steps of one fused stage that increment the same name overwrite each other there (seen:
    ``dead_lettered`` of the decode and the validate stage, ``encoded`` of every output written
    from one stage). A name only one step increments per stage is exact on every runner."""
    return f"{ENCODED}.{schema_name}"


def invalid(rule: str) -> str:
    """Counter name of the records failing one validation rule (``invalid.zip_code_format``)."""
    return f"invalid.{rule}"


def counter(name: str) -> Metrics.DelegatingCounter:
    """The project counter ``name`` (in ``NAMESPACE``)."""
    return Metrics.counter(NAMESPACE, name)


def distribution(name: str) -> Metrics.DelegatingDistribution:
    """The project distribution ``name`` (in ``NAMESPACE``)."""
    return Metrics.distribution(NAMESPACE, name)


class _CountDeadLettersFn(beam.DoFn):
    """Increments the dead-letter counters of each element and passes it on unchanged."""

    def setup(self) -> None:
        self._total = counter(DEAD_LETTERED)
        # Counter objects by name, made once per name (the set of names is small and fixed).
        self._counters: dict[str, Metrics.DelegatingCounter] = {}

    def _inc(self, name: str) -> None:
        c = self._counters.get(name)
        if c is None:
            c = self._counters[name] = counter(name)
        c.inc()

    def process(self, letter: DeadLetter):
        self._total.inc()
        self._inc(dead_lettered(letter.stage))
        self._inc(dead_lettered(letter.stage, letter.error_type))
        yield letter


class CountDeadLetters(beam.PTransform[beam.PCollection[DeadLetter], beam.PCollection[DeadLetter]]):
    """Counts dead letters (``dead_lettered``, ``dead_lettered.<stage>``,
    ``dead_lettered.<stage>.<error_type>``) and passes them through unchanged. Element-wise: no
    windowing or triggering of its own."""

    def expand(self, letters: beam.PCollection[DeadLetter]) -> beam.PCollection[DeadLetter]:
        return letters | "Count" >> beam.ParDo(_CountDeadLettersFn())
