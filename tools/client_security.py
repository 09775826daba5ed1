"""Kafka security settings of the command-line tools (simulate, dlq, demo), in one place.

A tool connects with the client properties file named by ``$KAFKA_CONFIG_FILE`` (the same file a
pipeline takes as ``--kafka_config_file``), mapped to librdkafka by
``transforms.io.client_config``. Without it, and when the local stack's Kafka runs secured
(``runners.local up --secure``), the tool uses the file of the local user made for its role
(``runners/security.toml``: ``producer`` writes the inputs, ``tools`` only reads); against an
unsecured broker it needs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from transforms.io.client_config import client_security_from_env, librdkafka_config


def tool_client_config(
    user: str, bootstrap_servers: str | None = None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """librdkafka security settings for a tool acting as ``user`` ({} when none are needed).

    ``$KAFKA_CONFIG_FILE`` wins. Otherwise the secured local stack's file of ``user``, but only
    when ``bootstrap_servers`` is None or the local broker's own address.
    """
    security = client_security_from_env(env)
    if security is not None:
        return librdkafka_config(security, env)
    from runners import local

    stack = local.Stack.load()
    if not stack.is_running(local.KAFKA) or not stack.kafka_secure:
        return {}
    if bootstrap_servers is not None and bootstrap_servers != stack.bootstrap_servers:
        return {}
    return stack.kafka_client_config(user)
