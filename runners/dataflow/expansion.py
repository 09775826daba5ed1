"""Beam's Kafka expansion service in its default (Docker) environment, for building Dataflow jobs.

The local stack runs the expansion service with ``--defaultEnvironmentType=EXTERNAL`` (its Java
transforms run in a worker pool on this machine). A Dataflow job must not carry that environment:
Google's workers cannot reach this machine. Started without ``--defaultEnvironmentType``, the
same service (same classpath, ``.local/lib/expansion-service``) expands ``ReadFromKafka`` and
``WriteToKafka`` in Beam's default environment: the Docker image ``apache/beam_java<N>_sdk:<beam>``
(N = the Java version that runs the service, 17 here), with the service's classpath jars attached
as artifacts that Dataflow stages and its Java harness loads (checked on a built job by
``tests/integration/test_dataflow_dry_run.py``).

``expansion_service()`` starts one on a free port, waits until its gRPC endpoint answers, yields
``localhost:PORT`` and stops it (its whole process group) on exit. Java's ``ExpansionService``
main takes only a port and listens on all interfaces; the service is stateless and lives only
while a job graph is built.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from runners import _procs
from runners._ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CLASSPATH_DIR = REPO_ROOT / ".local" / "lib" / "expansion-service"
MAIN_CLASS = "org.apache.beam.sdk.expansion.service.ExpansionService"
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


class ExpansionServiceError(RuntimeError):
    """The expansion service cannot start: no Java, no jars, or it died / timed out (with log)."""


def check_classpath_dir(classpath_dir: Path) -> Path:
    """``classpath_dir`` when it holds jars; else an error saying how to get them."""
    classpath_dir = Path(classpath_dir)
    if not classpath_dir.is_dir() or not any(classpath_dir.glob("*.jar")):
        raise ExpansionServiceError(
            f"{classpath_dir} holds no jars: run `make setup` (or `mvn -B -f runners/java/pom.xml "
            "package`) to copy the expansion service's classpath there"
        )
    return classpath_dir


def expansion_service_argv(java: str, classpath_dir: Path, port: int) -> list[str]:
    """The command line: no ``--defaultEnvironmentType``, so Beam's default Docker environment."""
    return [java, "-Xmx1g", "-cp", f"{classpath_dir}/*", MAIN_CLASS, str(port)]


def grpc_ready(address: str, timeout_s: float = 2.0) -> Callable[[], bool]:
    """A check that is true once a gRPC server accepts connections at ``address``."""

    def ready() -> bool:
        import grpc

        channel = grpc.insecure_channel(address)
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
            return True
        except grpc.FutureTimeoutError:
            return False
        finally:
            channel.close()

    return ready


@contextmanager
def expansion_service(
    classpath_dir: Path = DEFAULT_CLASSPATH_DIR,
    *,
    log_path: Path | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[str]:
    """Runs an expansion service in Beam's default environment; yields ``localhost:PORT``.

    ``log_path`` receives the service's output (a temporary file when None). Raises
    ``ExpansionServiceError`` (with the log's last lines) when Java or the jars are missing, or
    the service dies or does not answer within ``startup_timeout_s``.
    """
    if startup_timeout_s <= 0:
        raise ValueError(f"startup_timeout_s must be > 0 seconds, got {startup_timeout_s}")
    classpath_dir = check_classpath_dir(classpath_dir)
    java = shutil.which("java")
    if java is None:
        raise ExpansionServiceError(
            "java not found on PATH: install a JDK 17 (apt-get install -y openjdk-17-jdk-headless)"
        )
    with tempfile.TemporaryDirectory(prefix="dataflow-expansion-") as scratch:
        log = log_path or Path(scratch) / "expansion-service.log"
        port = free_port()
        address = f"localhost:{port}"
        spawned = _procs.spawn(expansion_service_argv(java, classpath_dir, port), log_path=log)
        try:
            try:
                _procs.wait_until(
                    grpc_ready(address),
                    what=f"the expansion service's gRPC endpoint {address}",
                    timeout_s=startup_timeout_s,
                    alive=lambda: _procs.is_alive(spawned.pid, spawned.create_time),
                    log_path=log,
                )
            except _procs.StartupError as exc:
                raise ExpansionServiceError(str(exc)) from exc
            yield address
        finally:
            _procs.stop(spawned.pid, spawned.create_time, timeout_s=STOP_TIMEOUT_S)
