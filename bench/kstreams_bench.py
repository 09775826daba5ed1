"""The Kafka Streams peer (``bench.kstreams_peer``) as system ``kstreams`` of the benchmarks.

``bench.compare`` and ``bench.latency`` call these with their own objects, so that the peer's
wiring lives here and theirs stays a line per system:

- ``measure_compare``: one bounded run on the compare input, metered like the Quix peer (this
  process and its children, the JVM included, plus the broker), its outputs judged against the
  oracle. The peer reports its first/last consumption times, so ``sustained_eps`` is measured on
  the input side as for the raw loop and Quix.
- ``LatencyRunning``: the peer consuming a live log up to known end offsets (``bench.latency``),
  with the latency run's producer settings and compressed windows.

The peer is built (``kstreams_peer.build``, cached) before any metering starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench import kstreams_peer
from bench.compare import RUN_TIMEOUT_S, Bench, Measurement, measure_system
from bench.workload import OUTPUT_FIELDS
from pipelines.options import PropertyTopics

SYSTEM = "kstreams"


def topic_arguments(topics: PropertyTopics) -> tuple[dict[str, str], dict[str, str]]:
    """The peer's ``inputs`` and ``outputs`` for ``topics``."""
    inputs = {"events": topics.events, "views": topics.views}
    outputs = {name: getattr(topics, f) for name, f in OUTPUT_FIELDS.items()}
    return inputs, outputs


def measure_compare(bench: Bench) -> Measurement:
    """``bench.compare``'s measurement of the peer (see the module docstring)."""
    jar = kstreams_peer.build()

    def work(topics: PropertyTopics) -> tuple[float | None, float | None, str]:
        inputs, outputs = topic_arguments(topics)
        run_arguments = kstreams_peer.arguments(
            bench.bootstrap, inputs, outputs, bench.stop_offsets, timeout_s=RUN_TIMEOUT_S
        )
        stats = kstreams_peer.KStreamsPeer(jar, run_arguments).wait(RUN_TIMEOUT_S + 120)
        if stats["consumed"] != bench.records:
            raise RuntimeError(f"kstreams consumed {stats['consumed']} of {bench.records}")
        note = (
            f"JVM, {stats.get('threads', '?')} stream threads; ends once input and repartition "
            f"topics are consumed; Kafka Streams dropped {stats['dropped_records']} records "
            "(windows past their grace)"
        )
        return stats["first_consumed_s"], stats["last_consumed_s"], note

    return measure_system(bench, SYSTEM, ["kafka"], work)


class LatencyRunning:
    """The peer consuming the latency run's live log up to ``stops`` (``bench.latency``'s
    ``Running`` protocol: ``stop()`` waits for its end, bounded, and returns a note)."""

    def __init__(
        self,
        bootstrap: str,
        topics: PropertyTopics,
        stops: Mapping[tuple[str, int], int],
        rules: Any,
        producer_extra: Mapping[str, Any],
    ) -> None:
        inputs, outputs = topic_arguments(topics)
        run_arguments = kstreams_peer.arguments(
            bootstrap, inputs, outputs, stops, rules=rules, producer_extra=producer_extra
        )
        self.peer = kstreams_peer.KStreamsPeer(kstreams_peer.build(), run_arguments)
        self.stats: dict[str, Any] = {}

    def stop(self) -> str:
        self.stats = self.peer.wait(timeout_s=600)
        return (
            "JVM subprocess; commit interval 1 s (the seed's); producer linger 1 ms; FALLBACK "
            f"enrichment; Kafka Streams dropped {self.stats['dropped_records']} records"
        )
