"""Versions of everything the local stack runs, read from the one place they live.

``runners/java/pom.xml`` holds every Java artifact version in its ``<properties>`` (Beam for Kafka
IO, the Beam Flink runner, Flink, Kafka, ...). Prism is built at ``beam.version``, so the Go side
follows the same file, as does Toxiproxy (Go). Nothing here hard-codes a version: edit the pom.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

POM_PATH = Path(__file__).resolve().parent / "java" / "pom.xml"
_POM_NS = "{http://maven.apache.org/POM/4.0.0}"


class VersionsError(ValueError):
    """The pom is missing, unreadable or lacks a version the stack needs."""


@dataclass(frozen=True)
class Versions:
    """The versions of the local stack, as the pom's ``<properties>`` state them."""

    beam: str
    """Beam Java (expansion service, Java SDK harness) and Prism; equals the Python SDK's."""
    beam_flink: str
    """Beam's Flink runner / job server (newest served with all its dependencies)."""
    flink_runner_artifact: str
    """Maven artifactId of the Flink runner, e.g. ``beam-runners-flink-1.19``."""
    flink: str
    """Flink of the session cluster (PyPI ``apache-flink-libraries``); same minor as the runner."""
    kafka: str
    """Apache Kafka broker (KRaft)."""
    kafka_clients: str
    """kafka-clients on the expansion service / Java harness classpath."""
    toxiproxy: str
    """Toxiproxy's server (Go), for the fault suite's network faults."""

    @property
    def flink_minor(self) -> str:
        """``1.19`` for ``1.19.3``: the Flink line the Beam runner artifact is built for."""
        return ".".join(self.flink.split(".")[:2])


_REQUIRED = {
    "beam": "beam.version",
    "beam_flink": "beam.flink.version",
    "flink_runner_artifact": "flink.runner.artifact",
    "flink": "flink.version",
    "kafka": "kafka.version",
    "kafka_clients": "kafka.clients.version",
    "toxiproxy": "toxiproxy.version",
}


def read_properties(pom: Path) -> dict[str, str]:
    """All ``<properties>`` of a Maven pom as a ``name -> text`` dict (text stripped)."""
    try:
        root = ET.parse(pom).getroot()
    except FileNotFoundError as exc:
        raise VersionsError(f"{pom} does not exist: the stack's versions live there") from exc
    except ET.ParseError as exc:
        raise VersionsError(f"{pom} is not valid XML ({exc}); fix the pom") from exc
    # Poms are usually namespaced; accept a bare one too.
    props = root.find(f"{_POM_NS}properties")
    if props is None:
        props = root.find("properties")
    if props is None:
        raise VersionsError(f"{pom} has no <properties> section; the versions must be there")
    out: dict[str, str] = {}
    for child in props:
        if not isinstance(child.tag, str):  # comments
            continue
        out[child.tag.removeprefix(_POM_NS)] = (child.text or "").strip()
    return out


def parse_versions(pom: Path) -> Versions:
    """Read the stack's versions from ``pom``; ``VersionsError`` names any missing property."""
    props = read_properties(pom)
    missing = [name for name in _REQUIRED.values() if not props.get(name)]
    if missing:
        raise VersionsError(f"{pom} <properties> lacks {', '.join(missing)}; add them there")
    return Versions(**{field: props[name] for field, name in _REQUIRED.items()})


@functools.cache
def versions() -> Versions:
    """The project's versions (parsed once per process from ``runners/java/pom.xml``)."""
    return parse_versions(POM_PATH)


if __name__ == "__main__":
    for key, value in versions().__dict__.items():
        print(f"{key}={value}")
