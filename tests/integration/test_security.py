"""The property pipeline and the tools against a secured Kafka (``runners.local up --secure``):
SASL_SSL with SCRAM-SHA-512, TLS from the project's CA, deny-by-default ACLs from
``runners/security.toml``.

A private secured broker is started for this module (its own stack home, free ports) and stopped
at its end; the Java expansion service, worker pool, Redis and market data are the session's.

- The replayed backlog through ``pipelines.property`` on Prism, connected as the ``pipeline`` user
  with exactly the documented ACLs, equals the oracle; no password appears in our logs, the
  Java services' logs or the run's output.
- The same on a Flink session cluster, and nothing Flink's REST API serves holds a password.
- A wrong password, an unknown user, a wrong mechanism, an untrusted CA, a missing READ ACL on an
  input and a missing WRITE ACL on an output fail before submission with one line naming the
  cause; with the check skipped, the job itself ends FAILED with a line naming the Kafka cause.
  The simulator and the DLQ tool refuse the same way.
"""

from __future__ import annotations

import json
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from pipelines import property as property_pipeline
from pipelines.kafka_access import KafkaAccessError, failure_cause
from pipelines.options import OptionError, PropertyTopics
from runners import security
from runners.marketdata.processes import served_dataset
from tools.simulate import SimulationSpec, generate, produce, scaled_spec
from tools.simulate import cli as simulate_cli
from tools.verify import differences, read_outputs, summarize
from transforms.io.kafka import EXPANSION_SERVICE_KEY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SPEC = SimulationSpec(
    properties=60, users=40, events=400, views=1_600, bots=1, too_late=4, poison_per_class=1
)
RUN_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory):
    """A secured single-broker Kafka in a private stack home, with the topics and ACLs."""
    from runners import local

    home = tmp_path_factory.mktemp("secure-stack")
    started = time.monotonic()
    try:
        stack = local.ensure_up([local.KAFKA], home=home, port_overrides={"kafka": 0}, secure=True)
        print(f"secured Kafka up in {time.monotonic() - started:.1f}s")
        yield stack
    finally:
        local.down(home=home, say=lambda _msg: None)


def _passwords(stack) -> dict[str, str]:
    files = security.SecurityFiles(Path(stack.record("kafka").extra["security_dir"]))
    with open(files.passwords, "rb") as fh:
        return tomllib.load(fh)


def _private_file(path: Path, text: str) -> Path:
    path.touch(mode=0o600)
    path.write_text(text)
    return path


def _base_argv(stack, expansion_service: str, local_services, config_file: Path) -> list[str]:
    return [
        "--runner=PrismRunner",
        f"--bootstrap_servers={stack.bootstrap_servers}",
        f"--kafka_config_file={config_file}",
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: expansion_service}),
        f"--marketdata_url={local_services.marketdata_url}",
        f"--redis_url={local_services.redis_url}",
    ]


def _replay_backlog(stack):
    """Fresh topics and the simulated backlog written as ``producer``; the simulation."""
    from runners import kafka

    kafka.ensure_topics(
        stack.bootstrap_servers,
        kafka.load_topics(),
        recreate=True,
        client_config=stack.kafka_client_config("admin"),
    )
    sim = generate(SPEC)
    as_producer = stack.kafka_client_config("producer")
    produce(sim.records, stack.bootstrap_servers, producer_config=as_producer, progress=False)
    return sim


def _backfill_equals_the_oracle(stack, argv: list[str], sim, marketdata_url: str) -> None:
    """Runs the pipeline over the backlog (``--backfill``) and compares every output, read back
    as the read-only ``tools`` user, with the oracle."""
    result = property_pipeline.start([*argv, "--backfill"])
    state = result.wait_until_finish(duration=RUN_TIMEOUT_S * 1000)
    assert str(state).endswith("DONE"), f"run ended {state}"
    outputs = read_outputs(
        stack.bootstrap_servers,
        PropertyTopics(),
        timeout_s=120,
        consumer_config=stack.kafka_client_config("tools"),
    )
    market = served_dataset(marketdata_url).lookup
    assert differences(summarize(outputs), sim.oracle, market) == [], sim.replay


def test_pipeline_on_secured_kafka_equals_the_oracle_and_leaks_no_password(
    secure_stack, expansion_service, local_services, capfd
):
    from runners import local

    sim = _replay_backlog(secure_stack)
    argv = _base_argv(
        secure_stack, expansion_service, local_services, secure_stack.kafka_config_file("pipeline")
    )
    _backfill_equals_the_oracle(secure_stack, argv, sim, local_services.marketdata_url)

    # Secrets: in no log of ours (the secured broker's, the shared stack's Java services') and
    # not in what the run printed.
    out, err = capfd.readouterr()
    logs = {
        log: log.read_text(errors="replace")
        for home in (secure_stack.paths.home, local.Stack.load().paths.home)
        for log in sorted((home / "logs").glob("*.log"))
    }
    assert any("java-workers" in log.name for log in logs), sorted(logs)
    for user, password in _passwords(secure_stack).items():
        assert password not in out + err, f"{user}'s password printed by the run"
        leaked = [str(log) for log, text in logs.items() if password in text]
        assert leaked == [], f"{user}'s password in {leaked}"


def test_on_a_flink_session_cluster_the_rest_api_shows_no_password(
    secure_stack, flink_session_cluster, expansion_service, local_services
):
    """The same replay on a Flink session cluster: equal to the oracle, and nothing Flink serves
    about the job (config, plan, exceptions, the JobManager's config) holds a password."""
    import urllib.request

    sim = _replay_backlog(secure_stack)
    argv = [
        *_base_argv(
            secure_stack,
            expansion_service,
            local_services,
            secure_stack.kafka_config_file("pipeline"),
        ),
        "--runner=FlinkRunner",
        f"--job_endpoint={flink_session_cluster.job_endpoint}",
    ]
    _backfill_equals_the_oracle(secure_stack, argv, sim, local_services.marketdata_url)

    def get(path: str) -> str:
        with urllib.request.urlopen(flink_session_cluster.rest_url + path, timeout=30) as resp:
            return resp.read().decode()

    jobs = json.loads(get("/jobs/overview"))["jobs"]
    assert jobs, "the session cluster lists no job"
    served = [get("/jobmanager/config"), get("/jobs/overview")]
    for jid in (j["jid"] for j in jobs):
        for path in ("", "/config", "/plan", "/exceptions"):
            served.append(get(f"/jobs/{jid}{path}"))
    text = "\n".join(served)
    for user, password in _passwords(secure_stack).items():
        assert password not in text, f"{user}'s password served by Flink's REST API"


def _wrong_password_config(stack, tmp_path: Path) -> Path:
    """The pipeline user's client properties with a wrong password."""
    good = stack.kafka_config_file("pipeline").read_text()
    return _private_file(
        tmp_path / "wrong.properties",
        "".join(
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            'username="pipeline" password="not-the-password";\n'
            if line.startswith("sasl.jaas.config=")
            else line + "\n"
            for line in good.splitlines()
        ),
    )


def test_a_wrong_password_fails_in_one_line(
    secure_stack, expansion_service, local_services, tmp_path
):
    wrong = _wrong_password_config(secure_stack, tmp_path)
    argv = _base_argv(secure_stack, expansion_service, local_services, wrong)
    argv.append(f"--stop_read_time_ms={int(time.time() * 1000)}")

    started = time.monotonic()
    with pytest.raises(KafkaAccessError, match="authentication failed") as info:
        property_pipeline.start(argv)
    print(f"wrong password, checked: {time.monotonic() - started:.1f}s: {info.value}")
    assert "\n" not in str(info.value)

    # Without the check the job itself fails, with the cause named.
    started = time.monotonic()
    with pytest.raises(Exception) as failed:  # Beam raises a bare RuntimeError
        result = property_pipeline.start([*argv, "--skip_kafka_access_check"])
        result.wait_until_finish(duration=RUN_TIMEOUT_S * 1000)
    cause = failure_cause(str(failed.value))
    print(f"wrong password, job: {time.monotonic() - started:.1f}s: {cause}")
    assert cause is not None and cause.startswith("Kafka authentication failed")

    # The simulator refuses the same way.
    code = _simulate_with(wrong, secure_stack, tmp_path)
    assert code == 1


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown user", "authentication failed: .*invalid credentials"),
        (
            "wrong mechanism",
            "Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512",
        ),
        ("untrusted CA", "TLS handshake failed: .*certificate verify failed"),
        ("no WRITE ACL", "lacks the WRITE ACL on topic 'alerts'"),
        ("no group ACL", "may not use consumer group 'other-group' \\(no ACL\\)"),
    ],
)
def test_each_misconfiguration_is_named_before_submission(
    secure_stack, expansion_service, local_services, tmp_path, case, message
):
    import re

    text = secure_stack.kafka_config_file("pipeline").read_text()
    if case == "unknown user":
        text = text.replace('username="pipeline"', 'username="nobody"')
    elif case == "wrong mechanism":
        text = text.replace("sasl.mechanism=SCRAM-SHA-512", "sasl.mechanism=SCRAM-SHA-256")
    elif case == "untrusted CA":
        other = security.SecurityFiles(tmp_path / "other-ca")
        security.ensure_tls(other)
        text = re.sub(
            r"ssl.truststore.location=.*", f"ssl.truststore.location={other.ca_cert}", text
        )
    elif case == "no WRITE ACL":  # the read-only tools user in the pipeline's place
        text = secure_stack.kafka_config_file("tools").read_text()
    config = _private_file(tmp_path / "client.properties", text)
    argv = _base_argv(secure_stack, expansion_service, local_services, config)
    if case == "no group ACL":  # the pipeline's ACLs cover groups property-pipeline* only
        argv.append("--consumer_group=other-group")
    started = time.monotonic()
    with pytest.raises(KafkaAccessError, match=message) as info:
        property_pipeline.start([*argv, f"--stop_read_time_ms={int(time.time() * 1000)}"])
    print(f"{case}: {time.monotonic() - started:.1f}s: {info.value}")
    assert "\n" not in str(info.value)


def _config_without_views_read(stack, tmp_path: Path) -> Path:
    """Client properties of a new user with the pipeline's ACLs except READ on
    property-views."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    from runners import kafka

    user, password = f"noread-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    admin = kafka.admin_client(stack.bootstrap_servers, **stack.kafka_client_config("admin"))
    upsert = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode()
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)
    bindings = [
        AclBinding(
            b.restype,
            b.name,
            b.resource_pattern_type,
            f"User:{user}",
            b.host,
            b.operation,
            AclPermissionType.ALLOW,
        )
        for b in security.acl_bindings(security.load_security())
        if b.principal == "User:pipeline"
        and not (b.name == "property-views" and b.operation == AclOperation.READ)
    ]
    security.apply_acls(admin, bindings)
    assert not any(
        b.restype == ResourceType.TOPIC
        and b.name == "property-views"
        and b.operation == AclOperation.READ
        and b.resource_pattern_type == ResourcePatternType.LITERAL
        for b in bindings
    )
    text = stack.kafka_config_file("pipeline").read_text()
    return _private_file(
        tmp_path / "noread.properties",
        text.replace('username="pipeline"', f'username="{user}"').replace(
            _passwords(stack)["pipeline"], password
        ),
    )


def test_a_missing_read_acl_on_an_input_fails_in_one_line(
    secure_stack, expansion_service, local_services, tmp_path
):
    config = _config_without_views_read(secure_stack, tmp_path)
    _replay_backlog(secure_stack)
    argv = [*_base_argv(secure_stack, expansion_service, local_services, config), "--backfill"]
    started = time.monotonic()
    with pytest.raises(KafkaAccessError, match="lacks the READ ACL on topic 'property-views'") as e:
        property_pipeline.start(argv)
    print(f"missing READ ACL, checked: {time.monotonic() - started:.1f}s: {e.value}")

    started = time.monotonic()
    with pytest.raises(Exception) as failed:  # Beam raises a bare RuntimeError
        result = property_pipeline.start([*argv, "--skip_kafka_access_check"])
        result.wait_until_finish(duration=RUN_TIMEOUT_S * 1000)
    cause = failure_cause(str(failed.value))
    print(f"missing READ ACL, job: {time.monotonic() - started:.1f}s: {cause}")
    assert cause is not None and "denied the pipeline's user access to a topic" in cause


@pytest.mark.flink
def test_a_live_run_on_the_secured_stack_equals_the_oracle(
    secure_stack, flink_session_cluster, expansion_service, local_services, record_property
):
    """A streaming job on a Flink session cluster, connected as the ``pipeline`` user with
    exactly the documented ACLs, reads the project's topics while the simulator writes them in
    real time as ``producer`` (``tests/integration/live.py``'s compressed log); every output,
    read back as ``tools``, equals the oracle."""
    from runners import kafka
    from tests.integration import live

    kafka.ensure_topics(
        secure_stack.bootstrap_servers,
        kafka.load_topics(),
        recreate=True,
        client_config=secure_stack.kafka_client_config("admin"),
    )
    topics = PropertyTopics()
    argv = live.pipeline_argv(
        ["--runner=FlinkRunner", f"--job_endpoint={flink_session_cluster.job_endpoint}"],
        scaled_spec(live.SPEC, live.SPEEDUP),
        topics,
        secure_stack.bootstrap_servers,
        expansion_service,
        local_services,
        extra=[f"--kafka_config_file={secure_stack.kafka_config_file('pipeline')}"],
    )
    job = live.FlinkJob(argv, flink_session_cluster.rest_url, None)
    try:
        sim, _ = live.live_simulation(int(time.time() * 1000))
        started = time.monotonic()
        live.produce_live(
            sim,
            secure_stack.bootstrap_servers,
            topics,
            producer_config=secure_stack.kafka_client_config("producer"),
        )
        produced_s = time.monotonic() - started
        summary, diffs = live.wait_for_oracle(
            secure_stack.bootstrap_servers,
            topics,
            sim,
            live.MATCH_TIMEOUT_S,
            served_dataset(local_services.marketdata_url).lookup,
            consumer_config=secure_stack.kafka_client_config("tools"),
        )
        settled_s = time.monotonic() - started - produced_s
    finally:
        job.cancel()
    record_property("secured_live_settled_s", round(settled_s, 1))
    print(
        f"secured live run: {len(sim.records)} records in {produced_s:.1f} s; outputs equal "
        f"{settled_s:.1f} s after the last one"
    )
    assert diffs == [], sim.replay
    live.assert_accounted(summary, sim)


#: A failing Flink job ends after the preset's 3 restarts 10 s apart; the CLI waits that long.
FLINK_FAIL_TIMEOUT_S = 300


@pytest.mark.flink
@pytest.mark.parametrize(
    ("case", "checked", "cause"),
    [
        ("wrong password", "authentication failed", "Kafka authentication failed"),
        (
            "no READ ACL",
            "lacks the READ ACL on topic 'property-views'",
            "denied the pipeline's user access to a topic",
        ),
    ],
)
def test_on_flink_a_refused_kafka_user_ends_failed_with_one_error_line(
    secure_stack,
    flink_session_cluster,
    expansion_service,
    local_services,
    tmp_path,
    case,
    checked,
    cause,
    record_property,
):
    """The streaming pipeline as a user runs it (``python -m pipelines.property``) on a Flink
    session cluster with the preset's bounded restart strategy: with the access check skipped,
    the Kafka read fails on the worker, the job ends FAILED after its bounded restarts (not an
    endless loop), and the command exits 1 with one ``error:`` line naming the cause. With the
    check, the same command stops before submission with one line."""
    import subprocess
    import sys

    from runners.flink import FlinkRest

    config = (
        _wrong_password_config(secure_stack, tmp_path)
        if case == "wrong password"
        else _config_without_views_read(secure_stack, tmp_path)
    )
    argv = [
        *_base_argv(secure_stack, expansion_service, local_services, config),
        "--runner=FlinkRunner",
        f"--job_endpoint={flink_session_cluster.job_endpoint}",
    ]

    def run(extra: list[str]) -> tuple[int, list[str], float]:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.property", *argv, *extra],
            capture_output=True,
            text=True,
            timeout=FLINK_FAIL_TIMEOUT_S + 120,
            check=False,
        )
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        return done.returncode, errors, time.monotonic() - started

    code, errors, checked_s = run([])
    print(f"{case}, checked on Flink: {checked_s:.1f}s: {errors}")
    assert code == 1 and len(errors) == 1 and checked in errors[0], errors

    rest = FlinkRest(flink_session_cluster.rest_url)
    submitted_ms = int(time.time() * 1000)
    code, errors, failed_s = run(["--skip_kafka_access_check"])
    ours = [j for j in rest.jobs() if j.start_time_ms >= submitted_ms - 1000]
    states = [rest.state(j.jid) for j in ours]
    restarts = [len(rest.failures(j.jid)) - 1 for j in ours]
    for job in ours:
        if rest.state(job.jid) not in ("FAILED", "CANCELED", "FINISHED"):
            rest.cancel(job.jid)
    print(f"{case}, job on Flink: exit {code} after {failed_s:.1f}s, {states} {restarts}: {errors}")
    record_property(f"{case} failed_after_s", round(failed_s, 1))
    assert code == 1
    assert len(errors) == 1 and cause in errors[0], errors
    assert states == ["FAILED"], states
    assert restarts == [3], restarts


def _simulate_with(config: Path, stack, tmp_path: Path) -> int:
    import os
    from unittest import mock

    with mock.patch.dict(os.environ, {"KAFKA_CONFIG_FILE": str(config)}):
        started = time.monotonic()
        code = simulate_cli.main(
            [
                f"--bootstrap_servers={stack.bootstrap_servers}",
                f"--oracle={tmp_path / 'oracle.json'}",
                "--events=10",
                "--views=10",
            ]
        )
        print(f"simulate refused in {time.monotonic() - started:.1f}s")
    return code


def test_the_dlq_tool_reads_as_tools_and_names_a_refused_login(secure_stack, tmp_path, capsys):
    import os
    from unittest import mock

    from tools import dlq

    tools = secure_stack.kafka_config_file("tools")
    args = ["inspect", f"--bootstrap_servers={secure_stack.bootstrap_servers}", "--timeout_s=30"]
    with mock.patch.dict(os.environ, {"KAFKA_CONFIG_FILE": str(tools)}):
        assert dlq.main(args) == 0
    wrong = _private_file(
        tmp_path / "wrong.properties",
        tools.read_text().replace(_passwords(secure_stack)["tools"], "not-the-password"),
    )
    capsys.readouterr()
    started = time.monotonic()
    with mock.patch.dict(os.environ, {"KAFKA_CONFIG_FILE": str(wrong)}):
        assert dlq.main(args) == dlq.EXIT_FAILED
    err = capsys.readouterr().err.strip()
    print(f"dlq inspect, wrong password: {time.monotonic() - started:.1f}s: {err}")
    assert len(err.splitlines()) == 1 and "authentication failed" in err


def test_the_latency_profile_counts_the_partitions_as_the_pipeline_user(secure_stack, tmp_path):
    # The launcher asks the secured broker (SASL_SSL, the pipeline user's ACLs) how many
    # partitions the run reads: property-events and property-views, 4 each (runners/topics.toml).
    argv = [
        "--runner=FlinkRunner",
        "--job_endpoint=127.0.0.1:1",  # nothing is submitted
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: "127.0.0.1:1"}),
        "--marketdata_url=http://127.0.0.1:1",
        "--redis_url=redis://127.0.0.1:1",
        f"--bootstrap_servers={secure_stack.bootstrap_servers}",
        f"--kafka_config_file={secure_stack.kafka_config_file('pipeline')}",
        "--profile=latency",
    ]
    options, _ = property_pipeline.pipeline_options(argv)
    assert options.get_all_options()["parallelism"] == 8

    # A refused login is named, with the way out.
    wrong = _wrong_password_config(secure_stack, tmp_path)
    started = time.monotonic()
    with pytest.raises(OptionError, match=r"--profile=latency .*authentication.*--parallelism"):
        property_pipeline.pipeline_options([*argv, f"--kafka_config_file={wrong}"])
    print(f"latency profile, wrong password: {time.monotonic() - started:.1f}s")
