"""Before a pipeline is submitted: can its Kafka user do what the run needs? And after a failure:
which Kafka cause, in one line.

``check_access`` connects with the same client properties file the job will use (mapped to
librdkafka), authenticates, and asks the broker which operations the user is authorized for on
each topic (``DescribeTopics`` with authorized operations): READ on every input, WRITE on every
output. A wrong password, an untrusted CA, a wrong mechanism or a missing ACL thus fails the run
at construction, in a couple of seconds, with one line naming the cause and the fix, instead of
a Java stack trace from the workers.

``failure_cause`` maps the text of a failed job (Java exception names from KafkaIO, librdkafka
error names from the bounded range reads) to the same kind of line, for failures that happen
after the check (an ACL removed while the job runs, or the check skipped).
``non_retriable_cause`` names, among those, the ones no restart can heal (Kafka's authentication
and authorization exceptions): a runner that restarts failed jobs (Flink) would retry them until
its restart strategy gives up, so the launcher cancels the job at the first one
(``pipelines.run_control.FlinkFailureWatch``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence


class KafkaAccessError(RuntimeError):
    """The pipeline's Kafka user cannot do what the run needs; the message is one line."""


# librdkafka error names (error_cb) that will not heal by retrying: report at once.
_FATAL_CONNECT = {"_AUTHENTICATION": "authentication failed", "_SSL": "TLS handshake failed"}


def fatal_connect_error(err) -> str | None:
    """The refusal a librdkafka client's error callback reports (``err``: a ``KafkaError``) that
    no retry heals, in words (None for any other error: a broker down, a timeout)."""
    what = _FATAL_CONNECT.get(err.name())
    return f"{what}: {err.str()}" if what else None


# Java exception (as KafkaIO reports it) -> the cause in words.
_JAVA_CAUSES = (
    (
        "SaslAuthenticationException",
        "Kafka authentication failed (wrong password, unknown user or SASL mechanism): check "
        "sasl.mechanism and sasl.jaas.config in the client properties file",
    ),
    (
        "UnsupportedSaslMechanismException",
        "Kafka refused the SASL mechanism (the broker enables other mechanisms): check "
        "sasl.mechanism in the client properties file",
    ),
    (
        "SslAuthenticationException",
        "TLS handshake with Kafka failed (untrusted CA or wrong host name): check "
        "ssl.truststore.* in the client properties file",
    ),
    (
        "SSLHandshakeException",
        "TLS handshake with Kafka failed (untrusted CA or wrong host name): check "
        "ssl.truststore.* in the client properties file",
    ),
    (
        "TopicAuthorizationException",
        "Kafka denied the pipeline's user access to a topic (missing ACL: READ on inputs, WRITE "
        "on outputs; docs/security.md)",
    ),
    (
        "GroupAuthorizationException",
        "Kafka denied the pipeline's user its consumer group (missing READ ACL on the group; "
        "docs/security.md)",
    ),
    # The same causes as librdkafka names them (the bounded range reads, transforms/io/
    # kafka_ranges.py, use confluent-kafka).
    (
        "_AUTHENTICATION",
        "Kafka authentication failed (wrong password, unknown user or SASL mechanism): check "
        "sasl.mechanism and sasl.jaas.config in the client properties file",
    ),
    (
        "_SSL",
        "TLS handshake with Kafka failed (untrusted CA or wrong host name): check "
        "ssl.truststore.* in the client properties file",
    ),
    (
        "TOPIC_AUTHORIZATION_FAILED",
        "Kafka denied the pipeline's user access to a topic (missing ACL: READ on inputs, WRITE "
        "on outputs; docs/security.md)",
    ),
    (
        "GROUP_AUTHORIZATION_FAILED",
        "Kafka denied the pipeline's user its consumer group (missing READ ACL on the group; "
        "docs/security.md)",
    ),
    (
        "ClusterAuthorizationException",
        "Kafka denied a cluster operation (IDEMPOTENT_WRITE ACL for the idempotent producer; "
        "docs/security.md)",
    ),
)


def failure_cause(text: str) -> str | None:
    """One line naming the Kafka cause of a failed job, from its error text (None: not Kafka's)."""
    for name, cause in _JAVA_CAUSES:
        if name in text:
            for line in text.splitlines():
                if name in line:
                    detail = line.split(name, 1)[1].lstrip(": ").strip()
                    return f"{cause} [{name}: {detail[:200]}]" if detail else cause
            return cause
    return None


# Kafka's exceptions that retrying cannot heal: a credential, a TLS trust or an ACL the broker
# refuses (org.apache.kafka.common.errors: every AuthenticationException and
# AuthorizationException subclass, and the SASL mechanism mismatch).
_NON_RETRIABLE = re.compile(
    r"org\.apache\.kafka\.common\.errors\."
    r"(\w*AuthenticationException|\w*AuthorizationException|UnsupportedSaslMechanismException"
    r"|IllegalSaslStateException)\b"
)


def non_retriable_cause(text: str) -> str | None:
    """One line naming the cause when ``text`` (a failure's stack trace) holds a Kafka
    exception that no restart can heal; None otherwise (a broker down, a timeout, a killed
    worker: a restart may heal those)."""
    found = _NON_RETRIABLE.search(text)
    if found is None:
        return None
    return failure_cause(text) or f"Kafka refused the pipeline's user: {found.group(1)}"


def check_access(
    bootstrap_servers: str,
    client_config: Mapping[str, str],
    *,
    read_topics: Sequence[str],
    write_topics: Sequence[str],
    group: str | None = None,
    user: str = "the pipeline's Kafka user",
    timeout_s: float = 30.0,
) -> None:
    """Raise ``KafkaAccessError`` unless ``client_config`` authenticates and may READ every
    ``read_topics`` and WRITE every ``write_topics`` (DESCRIBE included), and READ ``group``
    when one is given (a consumer group that commits offsets)."""
    from confluent_kafka import KafkaException, TopicCollection
    from confluent_kafka.admin import AclOperation, AdminClient

    fatal: list[str] = []
    seen = threading.Event()

    def on_error(err) -> None:
        refusal = fatal_connect_error(err)
        if refusal is not None and not fatal:
            fatal.append(refusal)
            seen.set()

    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            **client_config,
            "error_cb": on_error,
            "log_level": 0,
        }
    )
    wanted = {t: AclOperation.READ for t in read_topics}
    wanted.update({t: AclOperation.WRITE for t in write_topics})
    futures = admin.describe_topics(
        TopicCollection(sorted(wanted)),
        include_authorized_operations=True,
        request_timeout=timeout_s,
    )
    deadline = time.monotonic() + timeout_s
    for topic, future in sorted(futures.items()):
        while not future.done():
            if seen.is_set():
                raise KafkaAccessError(f"Kafka at {bootstrap_servers}: {fatal[0]}")
            if time.monotonic() > deadline:
                raise KafkaAccessError(
                    f"Kafka at {bootstrap_servers} did not answer within {timeout_s:.0f}s"
                    + (f" ({fatal[0]})" if fatal else "")
                )
            admin.poll(0.05)  # serves error_cb
        try:
            description = future.result()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            name = err.name() if err is not None and hasattr(err, "name") else ""
            if fatal:
                raise KafkaAccessError(f"Kafka at {bootstrap_servers}: {fatal[0]}") from None
            if name == "TOPIC_AUTHORIZATION_FAILED":
                raise KafkaAccessError(
                    f"{user} may not DESCRIBE topic {topic!r} (no ACL): grant it "
                    f"{'READ' if wanted[topic] == AclOperation.READ else 'WRITE'} and DESCRIBE"
                ) from None
            if name == "UNKNOWN_TOPIC_OR_PART":
                raise KafkaAccessError(
                    f"topic {topic!r} does not exist at {bootstrap_servers}: create it first"
                ) from None
            raise KafkaAccessError(f"describing topic {topic!r} failed: {exc}") from None
        allowed = set(description.authorized_operations or ())
        if wanted[topic] not in allowed and AclOperation.ALL not in allowed:
            op = wanted[topic].name
            raise KafkaAccessError(
                f"{user} lacks the {op} ACL on topic {topic!r} (it has "
                f"{', '.join(sorted(o.name for o in allowed)) or 'none'}): grant "
                f"ALLOW {op} on topic {topic} (docs/security.md)"
            )
    if group is not None:
        _check_group(admin, group, user, timeout_s)


def _check_group(admin, group: str, user: str, timeout_s: float) -> None:
    """READ on ``group`` (a group that does not exist yet is described as DEAD, with the user's
    authorized operations all the same)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AclOperation

    future = admin.describe_consumer_groups(
        [group], include_authorized_operations=True, request_timeout=timeout_s
    )[group]
    try:
        description = future.result(timeout=timeout_s)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if err is not None and err.name() == "GROUP_AUTHORIZATION_FAILED":
            raise KafkaAccessError(
                f"{user} may not use consumer group {group!r} (no ACL): grant ALLOW READ on "
                f"group {group} (docs/security.md)"
            ) from None
        raise KafkaAccessError(f"describing consumer group {group!r} failed: {exc}") from None
    allowed = set(description.authorized_operations or ())
    if AclOperation.READ not in allowed and AclOperation.ALL not in allowed:
        raise KafkaAccessError(
            f"{user} lacks the READ ACL on consumer group {group!r}: grant ALLOW READ on group "
            f"{group} (docs/security.md)"
        )
