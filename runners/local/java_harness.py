"""A Java SDK harness in a process of its own: the boot command of the local stack's Java worker
pool (``java-workers``), the EXTERNAL environment where Kafka IO's read and write run.

Beam's Java worker pool (``org.apache.beam.fn.harness.ExternalWorkerService``) runs every worker
as a thread of one JVM and answers ``StopWorker`` with nothing ("thread based workers terminate
automatically"): whatever a worker opened outlives its job. Measured here: each cancelled Kafka IO
job left its Kafka clients behind (sockets in CLOSE-WAIT, one selector per client), and about 24
jobs of 12 partitions exhausted the pool's 20 000 file descriptors; the next job failed with "Too
many open files".

The stack runs Beam's *process* worker pool instead (``apache_beam.runners.worker.worker_pool_main``
with this module as its container executable, the contract Beam's SDK containers implement):
each ``StartWorker`` becomes one JVM running ``FnHarness``, configured the way Beam's Java
container boots it (endpoints and runner capabilities from the runner's provision service), and
``StopWorker``, which Flink and Prism send when a job's environment closes, terminates that JVM
and everything it held. A job costs one JVM start (a second or two) instead of a thread; the
classes come from a class-data sharing archive the stack builds from an earlier worker's class
list (``runners.local.cds``, ``HarnessCommand.cds_dir``).

Invoked by the pool as ``<script> --id=ID --logging_endpoint=URL --artifact_endpoint=URL
--provision_endpoint=URL --control_endpoint=URL``; the script (written by
``runners.local.beam_services``) adds ``--harness_command=FILE``, a JSON file with the java
command and the worker's static pipeline options.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

FN_HARNESS_MAIN = "org.apache.beam.fn.harness.FnHarness"
#: The workers' archive family in ``HarnessCommand.cds_dir`` (``runners.local.cds``).
CDS_NAME = "java-harness"
#: How long the provision service may take to answer (the runner has just created the worker).
PROVISION_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class HarnessCommand:
    """What the pool's plan fixes for every worker: the JVM command (without the main class) and
    the pipeline options each harness starts with (the same for every job, as with Beam's
    thread pool)."""

    java: Sequence[str]
    pipeline_options: Mapping[str, object]
    # Where the workers' class-data sharing archive lives (``runners.local.cds``); None: none.
    cds_dir: str | None = None

    def write(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "java": list(self.java),
                    "pipeline_options": self.pipeline_options,
                    "cds_dir": self.cds_dir,
                }
            )
        )

    @classmethod
    def read(cls, path: Path) -> HarnessCommand:
        data = json.loads(path.read_text())
        return cls(
            java=data["java"],
            pipeline_options=data["pipeline_options"],
            cds_dir=data.get("cds_dir"),
        )

    def jvm(self, pid: int) -> list[str]:
        """The command that starts process ``pid``'s JVM: with the class-data sharing archive's
        flags when ``cds_dir`` is set and the command names its classpath."""
        java = list(self.java)
        if self.cds_dir and "-cp" in java[:-1]:
            from runners.local.cds import archive_flags

            classpath = java[java.index("-cp") + 1]
            java[1:1] = archive_flags(java[0], classpath, Path(self.cds_dir), CDS_NAME, pid)
        return [*java, FN_HARNESS_MAIN]


@dataclass(frozen=True)
class Endpoints:
    """Where one worker connects, as ``ApiServiceDescriptor`` text (``FnHarness``'s format)."""

    control: str
    logging: str
    capabilities: tuple[str, ...]
    #: The job's pipeline options from the provision service, as JSON (None without one).
    pipeline_options: str | None = None


def beam_api_without_beam() -> None:
    """Makes ``apache_beam.portability.api`` importable without running ``apache_beam``'s
    package init, which imports the whole SDK: 1.3 CPU s (5-6 s at a load of 20 on 2 cores)
    per worker start, where the protos this boot needs take 0.15 s. Only in a boot process, which
    execs its worker right after (a JVM, or Python's worker entry point, which imports the SDK
    itself); a process that already imported Beam keeps it."""
    import importlib.util
    import sys
    import types

    if "apache_beam" in sys.modules:
        return
    spec = importlib.util.find_spec("apache_beam")
    if spec is None or spec.submodule_search_locations is None:
        return
    package = types.ModuleType("apache_beam")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["apache_beam"] = package


def _descriptor(url: str) -> str:
    from apache_beam.portability.api import endpoints_pb2
    from google.protobuf import text_format

    return text_format.MessageToString(
        endpoints_pb2.ApiServiceDescriptor(url=url), as_one_line=True
    )


def resolve_endpoints(
    worker_id: str, control_url: str, logging_url: str, provision_url: str | None
) -> Endpoints:
    """The worker's endpoints and the runner's capabilities: the provision service's answer
    wins over the pool's request, as in Beam's ``ExternalWorkerService``."""
    if not provision_url:
        return Endpoints(_descriptor(control_url), _descriptor(logging_url), ())
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
    from google.protobuf import json_format, text_format

    with grpc.insecure_channel(provision_url) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        info = stub.GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(),
            metadata=[("worker_id", worker_id)],
            timeout=PROVISION_TIMEOUT_S,
        ).info
    control = (
        text_format.MessageToString(info.control_endpoint, as_one_line=True)
        if info.HasField("control_endpoint")
        else _descriptor(control_url)
    )
    logging = (
        text_format.MessageToString(info.logging_endpoint, as_one_line=True)
        if info.HasField("logging_endpoint")
        else _descriptor(logging_url)
    )
    options = (
        json_format.MessageToJson(info.pipeline_options)
        if info.HasField("pipeline_options")
        else None
    )
    return Endpoints(control, logging, tuple(info.runner_capabilities), options)


def boot_endpoints(
    argv: Sequence[str] | None, description: str, extra: Sequence[tuple[str, dict]] = ()
) -> tuple[argparse.Namespace, Endpoints]:
    """Parses the arguments Beam's process pool gives a boot command (``--id``, the control,
    logging, provision and artifact endpoints; ``extra`` adds ``(flag, add_argument kwargs)``)
    and resolves the worker's endpoints from the provision service. Nothing is staged: the
    artifact endpoint is accepted and not used."""
    parser = argparse.ArgumentParser(description=description)
    for flag, kwargs in extra:
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--id", required=True)
    parser.add_argument("--control_endpoint", required=True)
    parser.add_argument("--logging_endpoint", required=True)
    parser.add_argument("--provision_endpoint", default="")
    parser.add_argument("--artifact_endpoint", default="")
    args = parser.parse_args(argv)
    beam_api_without_beam()
    endpoints = resolve_endpoints(
        args.id, args.control_endpoint, args.logging_endpoint, args.provision_endpoint
    )
    return args, endpoints


def harness_env(
    worker_id: str, endpoints: Endpoints, command: HarnessCommand, base: Mapping[str, str]
) -> dict[str, str]:
    """``FnHarness.main``'s environment contract (HARNESS_ID, the two descriptors, options)."""
    env = dict(base)
    env.update(
        HARNESS_ID=worker_id,
        CONTROL_API_SERVICE_DESCRIPTOR=endpoints.control,
        LOGGING_API_SERVICE_DESCRIPTOR=endpoints.logging,
        PIPELINE_OPTIONS=json.dumps(command.pipeline_options),
    )
    if endpoints.capabilities:
        env["RUNNER_CAPABILITIES"] = " ".join(endpoints.capabilities)
    return env


def main(argv: Sequence[str] | None = None) -> None:
    args, endpoints = boot_endpoints(
        argv,
        __doc__.split("\n\n")[0],
        extra=[("--harness_command", {"type": Path, "required": True})],
    )
    command = HarnessCommand.read(args.harness_command)
    env = harness_env(args.id, endpoints, command, os.environ)
    # Beam's pool gives the worker a stdout pipe it never reads: once FnHarness had printed 64 KiB
    # the JVM would block. Its stdout joins stderr, the pool's log.
    os.dup2(2, 1)
    java = command.jvm(os.getpid())  # exec keeps the pid: the JVM is this process
    # Milliseconds, as the harness's own log lines: the JVM's start is the next line's time.
    now = time.time()
    stamp = f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now * 1000) % 1000:03d}"
    flags = " ".join(a for a in java if a.startswith("-XX:"))
    print(f"{stamp} java-harness: starting worker {args.id} {flags}", flush=True)
    os.execve(java[0], java, env)


if __name__ == "__main__":
    main()
