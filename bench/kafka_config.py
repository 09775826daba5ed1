"""How every benchmark's librdkafka client (Producer, Consumer, AdminClient) is configured, and the
``--kafka_config_file`` flag of the benchmarks, in one place.

A benchmark that talks to a Kafka the user names (``bench.passthrough``, ``bench.scaling``) takes
the same Kafka client properties file as the pipelines and the tools: ``--kafka_config_file``, or
``$KAFKA_CONFIG_FILE`` when the flag is absent. ``transforms.io.client_config`` maps its security
settings to librdkafka; the pipeline runs the benchmark starts get the same file as their own
``--kafka_config_file``, so one user (with one set of ACLs) does everything. Only the file's path
is ever put on a command line or in a message; its settings hold the password.

A benchmark that always starts its own private plaintext stack (``bench.compare``,
``bench.latency``, ``bench.latency_attribution``) never connects to the user's cluster: it refuses
the flag (``refuse``) and ignores the environment variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from transforms.io.client_config import (
    KAFKA_CONFIG_FILE_ENV,
    librdkafka_config,
    load_client_security,
)

FLAG = "kafka_config_file"
#: Why ``bench.compare``, ``bench.latency`` and ``bench.latency_attribution`` refuse the flag.
PRIVATE_STACK = (
    "always starts its own private plaintext Kafka (under --home) and never connects to your "
    "cluster; bench.passthrough and bench.scaling take a client properties file"
)


def client_conf(
    bootstrap: str,
    security: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration of one librdkafka client: ``bootstrap.servers``, the client's own
    ``settings`` (group, batching, fetch sizes...) and the ``security`` settings (of
    ``security_settings``). A key in both is a ``ValueError``: a tuning setting must never
    silently replace an authentication one."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, **(settings or {})}
    clash = sorted(set(conf) & set(security or {}))
    if clash:
        raise ValueError(f"bench client settings {clash} are security settings of the config file")
    return {**conf, **(security or {})}


def security_settings(config_file: str | os.PathLike[str] | None) -> dict[str, str]:
    """librdkafka security settings of a client properties file ({} for None).

    ``transforms.io.client_config.ClientConfigError`` (a ``ValueError``) when the file is missing
    or holds a setting librdkafka cannot honour; its message names the file and key, never a
    value.
    """
    if not config_file:
        return {}
    return librdkafka_config(load_client_security(config_file))


def add_argument(parser: argparse.ArgumentParser) -> None:
    """``--kafka_config_file`` of a benchmark that connects to the user's Kafka."""
    parser.add_argument(
        f"--{FLAG}",
        default=None,
        metavar="PATH",
        help=(
            "Kafka client properties file (security.protocol, sasl.*, ssl.*) for the benchmark's "
            "own clients and the pipeline runs it starts; default: $"
            f"{KAFKA_CONFIG_FILE_ENV}. Its user needs the ACLs of every client (create, write, "
            "read and delete the benchmark's topics)"
        ),
    )


def config_file(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> str | None:
    """The file of ``--kafka_config_file``, else of ``$KAFKA_CONFIG_FILE``; None without either."""
    given = getattr(args, FLAG, None)
    if given:
        return str(given)
    return (os.environ if env is None else env).get(KAFKA_CONFIG_FILE_ENV) or None


def pipeline_flags(path: str | None) -> list[str]:
    """The flag that gives a started pipeline the same file ([] without one)."""
    return [f"--{FLAG}={path}"] if path else []


def add_refusal(parser: argparse.ArgumentParser) -> None:
    """``--kafka_config_file`` of a benchmark that cannot use it: accepted by the parser (and
    listed in ``--help``, as every option is) so that ``refuse`` can say why instead of
    argparse's "unrecognized arguments"."""
    parser.add_argument(
        f"--{FLAG}",
        default=None,
        metavar="PATH",
        help="not taken here: this benchmark starts its own private plaintext Kafka (giving it "
        "is an error that says so); bench.passthrough and bench.scaling take a properties file",
    )


def refuse(parser: argparse.ArgumentParser, args: argparse.Namespace, why: str) -> None:
    """Exit with a usage error when ``--kafka_config_file`` was given to a benchmark that ``why``
    (e.g. "starts its own private plaintext stack") cannot use it."""
    if getattr(args, FLAG, None):
        parser.error(f"--{FLAG} is not taken: {parser.prog} {why}")
