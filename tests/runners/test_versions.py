"""runners.versions reads every version from the one pom."""

from pathlib import Path

import pytest

from runners.versions import POM_PATH, VersionsError, parse_versions, read_properties, versions

POM = """<?xml version="1.0"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <properties>
    <!-- a comment is not a property -->
    <beam.version> 9.1.0 </beam.version>
    <beam.flink.version>9.0.0</beam.flink.version>
    <flink.runner.artifact>beam-runners-flink-1.77</flink.runner.artifact>
    <flink.version>1.77.4</flink.version>
    <kafka.version>5.0.0</kafka.version>
    <kafka.clients.version>4.1.0</kafka.clients.version>
    <toxiproxy.version>3.0.1</toxiproxy.version>
  </properties>
</project>
"""


def write(tmp_path: Path, text: str) -> Path:
    pom = tmp_path / "pom.xml"
    pom.write_text(text)
    return pom


def test_versions_come_from_the_pom_properties_stripped(tmp_path):
    v = parse_versions(write(tmp_path, POM))
    assert v.beam == "9.1.0"
    assert v.beam_flink == "9.0.0"
    assert v.flink_runner_artifact == "beam-runners-flink-1.77"
    assert v.flink == "1.77.4"
    assert v.flink_minor == "1.77"
    assert v.kafka == "5.0.0"
    assert v.kafka_clients == "4.1.0"
    assert v.toxiproxy == "3.0.1"


def test_a_missing_property_is_named_in_the_error(tmp_path):
    pom = write(tmp_path, POM.replace("<kafka.version>5.0.0</kafka.version>", ""))
    with pytest.raises(VersionsError, match=r"kafka\.version"):
        parse_versions(pom)


def test_a_pom_without_properties_is_rejected(tmp_path):
    with pytest.raises(VersionsError, match="no <properties>"):
        read_properties(write(tmp_path, "<project/>"))


def test_a_missing_pom_is_a_clear_error(tmp_path):
    with pytest.raises(VersionsError, match="does not exist"):
        parse_versions(tmp_path / "nope.xml")


def test_the_project_pom_pins_beam_to_the_python_sdk_version():
    import apache_beam

    v = versions()
    assert v.beam == apache_beam.__version__
    assert read_properties(POM_PATH)["flink.runner.artifact"].endswith(v.flink_minor)
    assert versions() is v  # cached
