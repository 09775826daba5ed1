"""Session fixtures for tests against real services: Kafka, Beam's expansion service, Flink.

Where Kafka comes from, first match wins:

1. ``KAFKA_BOOTSTRAP_SERVERS`` set: that cluster, as is.
2. A Docker engine answers: testcontainers' Kafka (``testcontainers.community.kafka``).
3. Otherwise: the project's own broker from ``runners.local`` (``PROPERTY_STACK_HOME`` picks a
   stack home other than ``.local``). Services this session starts are stopped at its end;
   services that were already running are reused and left running.

The Java services Kafka IO needs (worker pool + expansion service) and Beam's Flink job server
come from ``runners.local`` (or ``BEAM_EXPANSION_SERVICE`` / ``FLINK_JOB_ENDPOINT`` when set).

A local broker that dies while a test runs fails that test at once with the broker's last log
lines (a watchdog thread interrupts the test), instead of letting it wait for its timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic


# The runner of every TestPipeline, pinned: Beam 2.73's DirectRunner first tries Prism (which it
# downloads from GitHub when it can) and falls back otherwise, so the runner depended on the
# machine's network. ``--update_compatibility_version`` at the installed Beam version makes the
# DirectRunner skip that attempt (and changes nothing else: no compatibility path applies to the
# current version), so a TestPipeline always runs on Beam's FnApiRunner, or on the
# BundleBasedDirectRunner for a pipeline the FnApiRunner cannot run (TestStream, streaming).
# ``--test-pipeline-options`` on the pytest command line still overrides it.
def pinned_test_pipeline_options() -> str:
    from apache_beam import version

    return f"--runner=DirectRunner --update_compatibility_version={version.__version__}"


def pytest_configure(config: pytest.Config) -> None:
    from apache_beam.testing.test_pipeline import TestPipeline

    if TestPipeline.pytest_test_pipeline_options is None:
        TestPipeline.pytest_test_pipeline_options = pinned_test_pipeline_options()


KAFKA_ENV = "KAFKA_BOOTSTRAP_SERVERS"
EXPANSION_ENV = "BEAM_EXPANSION_SERVICE"
FLINK_ENV = "FLINK_JOB_ENDPOINT"
FLINK_REST_ENV = "FLINK_REST_URL"
ADMIN_TIMEOUT_S = 30.0
WATCH_INTERVAL_S = 0.5


class BrokerDied(Exception):
    """The Kafka broker a test relies on stopped while the test ran."""


@dataclass(frozen=True)
class KafkaService:
    """A Kafka cluster for the session: its address and, when known, how to check it lives.

    ``check_alive`` raises with the broker's last log lines when it has died (None: not
    supervised by us, e.g. an external cluster).
    """

    bootstrap_servers: str
    origin: str
    check_alive: Callable[[], None] | None = None


@dataclass(frozen=True)
class FlinkJobServer:
    """Beam's Flink job server: its job endpoint and its log (which names each job's REST port)."""

    job_endpoint: str
    log_path: Path | None


class _SessionStack:
    """The local stack as this session uses it: starts services on demand, stops what it started."""

    def __init__(self) -> None:
        self._started: list[str] = []

    def ensure(self, services: list[str]):
        from runners import local  # the supervisor; only needed when no external service is given

        before = local.Stack.load()
        missing = [s for s in local.resolve_services(services) if not before.is_running(s)]
        stack = local.ensure_up(services, create_topics=False)
        self._started.extend(s for s in missing if s not in self._started)
        return stack

    def stop_started(self) -> None:
        if self._started:
            from runners import local

            local.down(self._started, say=lambda _msg: None)
            self._started.clear()


def _docker_answers() -> bool:
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (DockerException, OSError):
        return False


@pytest.fixture(scope="session")
def session_stack() -> Iterator[_SessionStack]:
    """The local stack, started on demand; what this session started is stopped at its end."""
    stack = _SessionStack()
    try:
        yield stack
    finally:
        stack.stop_started()


@pytest.fixture(scope="session")
def kafka_service(session_stack: _SessionStack) -> Iterator[KafkaService]:
    """The session's Kafka cluster (see the module docstring for where it comes from)."""
    servers = os.environ.get(KAFKA_ENV)
    if servers:
        yield KafkaService(servers, origin=f"${KAFKA_ENV}")
        return
    if _docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield KafkaService(container.get_bootstrap_server(), origin="testcontainers")
        return
    from runners import local

    stack = session_stack.ensure([local.KAFKA])
    yield KafkaService(
        stack.bootstrap_servers,
        origin=f"runners.local ({stack.paths.state_file})",
        check_alive=lambda: local.Stack.load(stack.paths.home).check_alive(local.KAFKA),
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_service: KafkaService) -> str:
    """``bootstrap.servers`` of the session's Kafka cluster."""
    return kafka_service.bootstrap_servers


@pytest.fixture(scope="session")
def expansion_service(session_stack: _SessionStack) -> str:
    """``host:port`` of Beam's expansion service with Kafka IO (EXTERNAL Java workers)."""
    address = os.environ.get(EXPANSION_ENV)
    if address:
        return address
    from runners import local

    return session_stack.ensure([local.EXPANSION_SERVICE]).expansion_service


@pytest.fixture(scope="session")
def flink_job_server(session_stack: _SessionStack) -> FlinkJobServer:
    """Beam's Flink job server (embedded Flink)."""
    endpoint = os.environ.get(FLINK_ENV)
    if endpoint:
        return FlinkJobServer(endpoint, log_path=None)
    from runners import local

    stack = session_stack.ensure([local.FLINK_JOB_SERVER])
    return FlinkJobServer(stack.job_endpoint, log_path=stack.log_path(local.FLINK_JOB_SERVER))


@pytest.fixture(scope="session")
def flink_expansion_service(session_stack: _SessionStack) -> str:
    """``host:port`` of Beam's expansion service at the Flink runner's version (the native Kafka
    read, ``--kafka_read=native``); its reads run in the session's Flink job server."""
    from runners import local

    return session_stack.ensure([local.FLINK_EXPANSION_SERVICE]).flink_expansion_service


@dataclass(frozen=True)
class FlinkSessionCluster:
    """A Flink session cluster and a Beam Flink job server that submits jobs to it; ``home`` is
    the private stack home that runs them (None when given by the environment), for tests that
    kill and restart its processes (``runners.local.kill_process``)."""

    job_endpoint: str
    rest_url: str
    home: Path | None = None


@pytest.fixture(scope="session")
def flink_session_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FlinkSessionCluster]:
    """``FLINK_JOB_ENDPOINT`` + ``FLINK_REST_URL`` when both are set; else a session cluster and
    its job server started in a private stack home (free ports), stopped at the session's end.

    Needs the Flink distribution (``make setup`` installs it)."""
    endpoint, rest_url = os.environ.get(FLINK_ENV), os.environ.get(FLINK_REST_ENV)
    if endpoint and rest_url:
        yield FlinkSessionCluster(endpoint, rest_url)
        return
    from runners import local

    home = tmp_path_factory.mktemp("flink-session")
    services = [local.FLINK_CLUSTER, local.FLINK_JOB_SERVER]
    try:
        stack = local.ensure_up(
            services, home=home, port_overrides=dict.fromkeys(services, 0), create_topics=False
        )
        yield FlinkSessionCluster(stack.job_endpoint, stack.flink_rest_url, home)
    finally:
        local.down(home=home, say=lambda _msg: None)


@pytest.fixture(scope="session")
def local_services(session_stack: _SessionStack):
    """The market-data service and Redis of the local stack (started when not running)."""
    from runners import local

    return session_stack.ensure([local.MARKETDATA, local.REDIS])


@pytest.fixture(scope="session")
def schema_registry(session_stack: _SessionStack) -> str:
    """The local schema registry's URL (``runners.schemaregistry``; started when not running)."""
    from runners import local

    return session_stack.ensure([local.SCHEMA_REGISTRY]).schema_registry_url


@pytest.fixture
def make_topic(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """A factory of fresh topics, unique per test, created now and deleted after the test."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created: list[str] = []
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60].strip("-")

    def make(partitions: int = 4, suffix: str = "") -> str:
        name = f"test-{stem}-{suffix + '-' if suffix else ''}{uuid.uuid4().hex[:8]}"
        future = admin.create_topics([NewTopic(name, num_partitions=partitions)])[name]
        future.result(timeout=ADMIN_TIMEOUT_S)
        created.append(name)
        return name

    yield make
    if created:
        for future in admin.delete_topics(created, operation_timeout=ADMIN_TIMEOUT_S).values():
            # A deletion that fails must not hide the test's outcome; the topic is unique anyway.
            with contextlib.suppress(Exception):
                future.result(timeout=ADMIN_TIMEOUT_S)


class BrokerWatch:
    """Interrupts the main thread with ``BrokerDied`` as soon as ``check_alive`` raises.

    A watchdog thread calls ``check_alive`` every ``interval_s``; on failure it signals the main
    thread (SIGUSR1), whose handler raises ``BrokerDied`` with the message wherever the test is
    waiting (a sleep, a poll loop, a Beam wait), so a dead broker fails the test instead of
    hanging it. Usable only from the main thread.
    """

    def __init__(self, check_alive: Callable[[], None], interval_s: float = WATCH_INTERVAL_S):
        self._check_alive = check_alive
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._watch, name="broker-watch", daemon=True)
        self._previous_handler: object = None

    def _watch(self) -> None:
        main_id = threading.main_thread().ident
        while not self._stop.wait(self._interval_s):
            try:
                self._check_alive()
            except Exception as exc:  # whatever the check raises means: the broker is gone
                self.failure = str(exc)
                if main_id is not None:
                    signal.pthread_kill(main_id, signal.SIGUSR1)
                return

    def _on_signal(self, _signum: int, _frame: object) -> None:
        if self.failure is not None and not self._stop.is_set():
            raise BrokerDied(f"the Kafka broker died during the test: {self.failure}")

    def __enter__(self) -> BrokerWatch:
        self._previous_handler = signal.signal(signal.SIGUSR1, self._on_signal)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval_s * 4)
        signal.signal(signal.SIGUSR1, self._previous_handler)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _fail_when_broker_dies(request: pytest.FixtureRequest) -> Iterator[None]:
    """For tests that use Kafka from ``runners.local``: a dead broker fails the test at once."""
    if "kafka_bootstrap" not in request.fixturenames or (
        threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    service: KafkaService = request.getfixturevalue("kafka_service")
    if service.check_alive is None:
        yield
        return
    with BrokerWatch(service.check_alive) as watch:
        yield
    if watch.failure is not None:
        # The test swallowed the interruption (or finished meanwhile): fail it all the same.
        pytest.fail(f"the Kafka broker died during the test: {watch.failure}", pytrace=False)
