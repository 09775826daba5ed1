"""The one-line Kafka causes of a failed job (the broker-side checks run in
tests/integration/test_security.py)."""

import pytest

from pipelines.kafka_access import failure_cause


@pytest.mark.parametrize(
    ("exception", "starts"),
    [
        (
            "org.apache.kafka.common.errors.SaslAuthenticationException: Authentication failed "
            "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512",
            "Kafka authentication failed",
        ),
        (
            "org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized to access "
            "topics: [property-views]",
            "Kafka denied the pipeline's user access to a topic",
        ),
        ("javax.net.ssl.SSLHandshakeException: PKIX path building failed", "TLS handshake"),
        ("GroupAuthorizationException: Not authorized to access group: g", "Kafka denied"),
    ],
)
def test_a_kafka_failure_is_named_in_one_line(exception, starts):
    text = (
        f"Pipeline job-001 failed in state FAILED: bundle failed:\n\tat x.y(Z.java:1)\n{exception}"
    )
    cause = failure_cause(text)
    assert cause is not None and cause.startswith(starts)
    assert "\n" not in cause
    assert exception.split(": ", 1)[1][:40] in cause


def test_other_failures_are_not_named():
    assert failure_cause("java.lang.OutOfMemoryError: Java heap space") is None


@pytest.mark.parametrize(
    ("exception", "starts"),
    [
        (
            "org.apache.kafka.common.errors.SaslAuthenticationException: Authentication failed",
            "Kafka authentication failed",
        ),
        (
            "org.apache.kafka.common.errors.UnsupportedSaslMechanismException: Client SASL "
            "mechanism 'SCRAM-SHA-256' not enabled in the server",
            "Kafka refused the SASL mechanism",
        ),
        (
            "org.apache.kafka.common.errors.SslAuthenticationException: SSL handshake failed",
            "TLS handshake with Kafka failed",
        ),
        (
            "org.apache.kafka.common.errors.GroupAuthorizationException: Not authorized to access "
            "group: g",
            "Kafka denied the pipeline's user its consumer group",
        ),
        (
            "org.apache.kafka.common.errors.TransactionalIdAuthorizationException: x",
            "Kafka refused the pipeline's user: TransactionalIdAuthorizationException",
        ),
    ],
)
def test_kafka_refusals_are_not_retriable(exception, starts):
    """What the Flink launcher cancels a job for at its first failure: each is named."""
    from pipelines.kafka_access import non_retriable_cause

    text = f"java.lang.RuntimeException: bundle failed\n\tat x.y(Z.java:1)\nCaused by: {exception}"
    cause = non_retriable_cause(text)
    assert cause is not None and cause.startswith(starts), cause
    assert "\n" not in cause


@pytest.mark.parametrize(
    "text",
    [
        "org.apache.kafka.common.errors.TimeoutException: Timeout of 60000ms expired",
        "org.apache.flink.util.FlinkException: The TaskExecutor is shutting down",
        "java.lang.OutOfMemoryError: Java heap space",
        # librdkafka's names (the Python range reads): not the Java exceptions Flink reports.
        'KafkaError{code=_TRANSPORT,val=-195,str="SASL_SSL broker down"}',
    ],
)
def test_failures_a_restart_may_heal_are_left_to_the_restart_strategy(text):
    from pipelines.kafka_access import non_retriable_cause

    assert non_retriable_cause(text) is None
