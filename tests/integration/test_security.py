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
  input, a missing WRITE ACL on an output and a missing group ACL fail before submission with one
  line naming the cause; with the check skipped, the job itself meets the refusal, on Prism and
  on a Flink session cluster (cancelled at its first such failure, not restarted), and the
  command ends with one line naming the Kafka cause, no offset committed and nothing written to
  the refused output. The simulator, verify and the DLQ tool refuse the same way.
- The benchmarks' Kafka helpers (``bench.kafka_io`` through ``bench.kafka_config``) write as the
  ``producer`` user and read as ``tools``, which is refused a write.
- A live run on Prism and on Flink equals the oracle.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from pipelines import property as property_pipeline
from pipelines.kafka_access import KafkaAccessError
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

    # The simulator refuses the same way.
    code = _simulate_with(wrong, secure_stack, tmp_path)
    assert code == 1

    # verify (the tests', the demo's and the benchmarks' reader) too: at the refusal, not after
    # its timeout.
    wrong_tools = {**secure_stack.kafka_client_config("tools"), "sasl.password": "not-it"}
    started = time.monotonic()
    with pytest.raises(KafkaAccessError, match="authentication failed") as refused:
        read_outputs(
            secure_stack.bootstrap_servers,
            PropertyTopics(),
            timeout_s=RUN_TIMEOUT_S,
            consumer_config=wrong_tools,
        )
    print(f"verify, wrong password: {time.monotonic() - started:.1f}s: {refused.value}")
    assert "\n" not in str(refused.value)


def _client_side_misconfigured(text: str, case: str, tmp_path: Path) -> str:
    """The pipeline user's properties ``text`` broken on the client side as ``case`` says
    (unknown user, wrong mechanism, untrusted CA); any other case: ``text`` unchanged."""
    if case == "unknown user":
        return text.replace('username="pipeline"', 'username="nobody"')
    if case == "wrong mechanism":
        return text.replace("sasl.mechanism=SCRAM-SHA-512", "sasl.mechanism=SCRAM-SHA-256")
    if case == "untrusted CA":
        other = security.SecurityFiles(tmp_path / "other-ca")
        security.ensure_tls(other)
        return re.sub(
            r"ssl.truststore.location=.*", f"ssl.truststore.location={other.ca_cert}", text
        )
    return text


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
    text = _client_side_misconfigured(
        secure_stack.kafka_config_file("pipeline").read_text(), case, tmp_path
    )
    if case == "no WRITE ACL":  # the read-only tools user in the pipeline's place
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
    return _config_without_acl(stack, tmp_path, "property-views", "READ")


def _config_without_acl(stack, tmp_path: Path, topic: str, operation: str) -> Path:
    """Client properties of a new user with the pipeline's ACLs except ``operation`` on
    ``topic``."""
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
        and not (b.name == topic and b.operation == AclOperation[operation])
    ]
    security.apply_acls(admin, bindings)
    assert not any(
        b.restype == ResourceType.TOPIC
        and b.name == topic
        and b.operation == AclOperation[operation]
        and b.resource_pattern_type == ResourcePatternType.LITERAL
        for b in bindings
    )
    text = stack.kafka_config_file("pipeline").read_text()
    return _private_file(
        tmp_path / f"no-{operation.lower()}.properties",
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


@pytest.mark.parametrize("runner", [pytest.param("flink", marks=pytest.mark.flink), "prism"])
def test_a_live_run_on_the_secured_stack_equals_the_oracle(
    secure_stack, expansion_service, local_services, request, runner, record_property
):
    """A streaming job, on a Flink session cluster and on Prism, connected as the ``pipeline``
    user with exactly the documented ACLs, reads the project's topics while the simulator writes
    them in real time as ``producer`` (``tests/integration/live.py``'s compressed log); every
    output, read back as ``tools``, equals the oracle."""
    from runners import kafka
    from tests.integration import live

    kafka.ensure_topics(
        secure_stack.bootstrap_servers,
        kafka.load_topics(),
        recreate=True,
        client_config=secure_stack.kafka_client_config("admin"),
    )
    topics = PropertyTopics()
    if runner == "flink":
        cluster = request.getfixturevalue("flink_session_cluster")
        runner_args = ["--runner=FlinkRunner", f"--job_endpoint={cluster.job_endpoint}"]
    else:
        runner_args = ["--runner=PrismRunner"]
    argv = live.pipeline_argv(
        runner_args,
        scaled_spec(live.SPEC, live.SPEEDUP),
        topics,
        secure_stack.bootstrap_servers,
        expansion_service,
        local_services,
        extra=[f"--kafka_config_file={secure_stack.kafka_config_file('pipeline')}"],
    )
    job = live.FlinkJob(argv, cluster.rest_url, None) if runner == "flink" else live.PrismJob(argv)
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
    record_property(f"secured_live_{runner}_settled_s", round(settled_s, 1))
    print(
        f"secured live run on {runner}: {len(sim.records)} records in {produced_s:.1f} s; "
        f"outputs equal {settled_s:.1f} s after the last one"
    )
    assert diffs == [], sim.replay
    live.assert_accounted(summary, sim)


#: Each refused run, as a user runs it, ends within this (the command's own bound, not a speed
#: assertion: a Flink job that restarted without end would hit it).
FAIL_TIMEOUT_S = 600

# (case, the cause the one error line names, runners on which it is faults_slow). The default
# run keeps one case per kind of refusal on Prism (authentication, TLS, read ACL, and the refused
# write, whose records were read: no offset may be committed for them; 5-20 s each) and two on
# Flink (authentication, read ACL: 30-60 s each on 2 shared cores; the launcher cancels the job
# the same way for every Kafka refusal); the rest is faults_slow (~3.5 min more).
_BOTH, _FLINK, _NONE = ("prism", "flink"), ("flink",), ()
REFUSALS = [
    ("wrong password", "Kafka authentication failed", _NONE),
    ("unknown user", "Kafka authentication failed", _BOTH),
    ("wrong mechanism", "Kafka refused the SASL mechanism", _BOTH),
    ("untrusted CA", "TLS handshake with Kafka failed", _FLINK),
    ("no READ ACL", "denied the pipeline's user access to a topic", _NONE),
    ("no WRITE ACL", "Not authorized to access topics: [enriched-property-events]", _FLINK),
    ("no group ACL", "denied the pipeline's user its consumer group", _BOTH),
]


def _refusal_params() -> list:
    return [
        pytest.param(
            runner,
            case,
            cause,
            marks=[
                *([pytest.mark.flink] if runner == "flink" else []),
                *([pytest.mark.faults_slow] if runner in slow_on else []),
            ],
            id=f"{case}-{runner}",
        )
        for case, cause, slow_on in REFUSALS
        for runner in ("prism", "flink")
    ]


def _refused_config(stack, tmp_path: Path, case: str) -> tuple[Path, str]:
    """The client properties file and consumer group of a run refused for ``case``."""

    group = f"property-pipeline-{uuid.uuid4().hex[:6]}"  # allowed by the pipeline's ACLs
    text = stack.kafka_config_file("pipeline").read_text()
    if case == "wrong password":
        return _wrong_password_config(stack, tmp_path), group
    if case == "no READ ACL":
        return _config_without_acl(stack, tmp_path, "property-views", "READ"), group
    if case == "no WRITE ACL":
        return _config_without_acl(stack, tmp_path, "enriched-property-events", "WRITE"), group
    text = _client_side_misconfigured(text, case, tmp_path)
    if case == "no group ACL":
        group = f"other-group-{uuid.uuid4().hex[:6]}"  # the pipeline may use property-pipeline*
    return _private_file(tmp_path / "client.properties", text), group


@pytest.fixture(scope="module")
def refusal_backlog(secure_stack) -> None:
    """The backlog in the input topics, for the refused runs to read from the earliest offset
    (a refused write needs records to reach it)."""
    _replay_backlog(secure_stack)


def _end_offsets(stack, topics: list[str]) -> dict[str, int]:
    """Records in each of ``topics`` (the sum of its partitions' high watermarks), as admin."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": f"tools-{uuid.uuid4().hex[:6]}",
            **stack.kafka_client_config("admin"),
        }
    )
    try:
        ends = {}
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            ends[topic] = sum(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in meta.partitions
            )
        return ends
    finally:
        consumer.close()


def _committed_offsets(stack, group: str) -> dict[tuple[str, int], int]:
    """The offsets ``group`` committed (>= 0), per (topic, partition), read as admin."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    from runners import kafka

    admin = kafka.admin_client(stack.bootstrap_servers, **stack.kafka_client_config("admin"))
    partitions = [
        TopicPartition(topic, p)
        for topic in (PropertyTopics().events, PropertyTopics().views)
        for p in admin.list_topics(topic, timeout=30).topics[topic].partitions
    ]
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    reply = admin.list_consumer_group_offsets(request)[group].result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in reply.topic_partitions if tp.offset >= 0}


@pytest.mark.parametrize(("runner", "case", "cause"), _refusal_params())
def test_a_refused_kafka_user_ends_the_run_with_one_line(
    secure_stack,
    refusal_backlog,
    expansion_service,
    local_services,
    request,
    tmp_path,
    runner,
    case,
    cause,
    record_property,
):
    """The streaming pipeline as a user runs it (``python -m pipelines.property``), from the
    earliest offset of a backlog, with the access check skipped so that the job meets the
    refusal: the command exits 1 with one ``error:`` line naming the cause. On a Flink session
    cluster the launcher cancels the job at its first such failure
    (``run_control.FlinkFailureWatch``) instead of letting the bounded restarts retry it. The
    run commits no offset and writes nothing to the refused output (nor to any output when the
    refusal is on the read side). With the check, the same command stops before submission."""
    import subprocess
    import sys

    config, group = _refused_config(secure_stack, tmp_path, case)
    argv = [
        *_base_argv(secure_stack, expansion_service, local_services, config),
        f"--consumer_group={group}",
        "--offset_reset=earliest",
    ]
    if runner == "flink":
        cluster = request.getfixturevalue("flink_session_cluster")
        argv += [
            "--runner=FlinkRunner",
            f"--job_endpoint={cluster.job_endpoint}",
            # The cluster's REST address: the job server submits there, the launcher watches it.
            f"--flink_master={cluster.rest_url.split('://', 1)[1]}",
        ]
    topics = PropertyTopics()
    outputs = [t for t in vars(topics).values() if t not in (topics.events, topics.views)]
    before = _end_offsets(secure_stack, outputs)

    def run(extra: list[str]) -> tuple[int, list[str], float]:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.property", *argv, *extra],
            capture_output=True,
            text=True,
            timeout=FAIL_TIMEOUT_S,
            check=False,
        )
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        return done.returncode, errors, time.monotonic() - started

    code, errors, failed_s = run(["--skip_kafka_access_check"])
    print(f"{case} on {runner}, the job: exit {code} after {failed_s:.1f}s: {errors}")
    record_property(f"{runner} {case} failed_after_s", round(failed_s, 1))
    assert code == 1
    assert len(errors) == 1 and cause in errors[0], errors
    if runner == "flink":
        assert "the Flink job was cancelled at this failure" in errors[0] or (
            "the pipeline failed" in errors[0]  # refused before the job ran (at expansion)
        ), errors

    assert _committed_offsets(secure_stack, group) == {}
    after = _end_offsets(secure_stack, outputs)
    if case == "no WRITE ACL":
        assert after["enriched-property-events"] == before["enriched-property-events"]
    else:
        assert after == before, "a run refused on the read side wrote output"

    if runner == "flink":  # with the check: refused before submission, the same kind of line
        code, errors, checked_s = run([])
        print(f"{case} on {runner}, checked: exit {code} after {checked_s:.1f}s: {errors}")
        assert code == 1 and len(errors) == 1, errors


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
        # The SDF read: the profile counts partitions for it (with the local stack's
        # flink-expansion-service running it would choose the native read and count nothing).
        "--kafka_read=sdf",
    ]
    options, _ = property_pipeline.pipeline_options(argv)
    assert options.get_all_options()["parallelism"] == 8

    # A refused login is named, with the way out.
    wrong = _wrong_password_config(secure_stack, tmp_path)
    started = time.monotonic()
    with pytest.raises(OptionError, match=r"--profile=latency .*authentication.*--parallelism"):
        property_pipeline.pipeline_options([*argv, f"--kafka_config_file={wrong}"])
    print(f"latency profile, wrong password: {time.monotonic() - started:.1f}s")


def test_the_bench_kafka_helpers_write_as_producer_and_read_as_tools(secure_stack):
    # bench.kafka_io through bench.kafka_config, each user's own file: the producer's markers
    # land, the read-only tools user reads them and is refused a write (so its file is used).
    from bench import kafka_config, kafka_io

    bootstrap, topics = secure_stack.bootstrap_servers, ["property-events"]
    producer = kafka_config.security_settings(secure_stack.kafka_config_file("producer"))
    tools = kafka_config.security_settings(secure_stack.kafka_config_file("tools"))
    assert producer["sasl.username"] == "producer" and tools["sasl.username"] == "tools"
    started = time.monotonic()
    before = kafka_io.end_offsets(bootstrap, topics, security=tools)
    stop_ms = kafka_io.mark_end(bootstrap, topics, security=producer)
    after = kafka_io.end_offsets(bootstrap, topics, security=tools)
    assert after == {where: offset + 1 for where, offset in before.items()}
    first, last = kafka_io.append_times(bootstrap, topics, timeout_s=60, security=tools)
    assert first <= stop_ms <= last
    with pytest.raises(RuntimeError, match="TOPIC_AUTHORIZATION_FAILED"):
        kafka_io.mark_end(bootstrap, topics, security=tools)
    assert kafka_io.end_offsets(bootstrap, topics, security=tools) == after
    print(f"bench helpers as producer/tools: {time.monotonic() - started:.1f}s")
