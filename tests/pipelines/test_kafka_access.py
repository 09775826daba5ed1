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
