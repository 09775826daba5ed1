"""The Java workers' boot script (``runners.local.java_harness``) outside a pool: what it needs
of Beam, and the JVM command it builds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runners.local.java_harness import FN_HARNESS_MAIN, HarnessCommand

PROBE = """
import json, sys
from runners.local.java_harness import beam_api_without_beam, _descriptor
beam_api_without_beam()
descriptor = _descriptor("localhost:1234")
print(json.dumps({"descriptor": descriptor, "sdk_loaded": "apache_beam.coders" in sys.modules}))
"""


def test_the_boot_reads_beams_protos_without_importing_the_sdk():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe == {"descriptor": 'url: "localhost:1234"', "sdk_loaded": False}


def test_the_jvm_gets_the_archive_flags_before_its_main_class_only_with_a_cds_dir(tmp_path):
    java = ["/usr/bin/java", "-Xmx1g", "-cp", str(tmp_path / "*")]
    plain = HarnessCommand(java=java, pipeline_options={})
    assert plain.jvm(4242) == [*java, FN_HARNESS_MAIN]
    with_cds = HarnessCommand(java=java, pipeline_options={}, cds_dir=str(tmp_path / "cds"))
    path = tmp_path / "command.json"
    with_cds.write(path)
    command = HarnessCommand.read(path).jvm(4242)
    assert command[0] == "/usr/bin/java" and command[-1] == FN_HARNESS_MAIN
    (flag,) = [a for a in command if a.startswith("-XX:")]
    assert flag.startswith("-XX:DumpLoadedClassList=") and str(tmp_path / "cds") in flag
    assert command.index(flag) < command.index("-cp")
    assert Path(tmp_path / "cds").is_dir()
