"""The flex template's parameters (``metadata.json``) and the pipeline options they must match.

Dataflow's launcher passes each template parameter to ``launch.py`` as ``--name=value``. So every
parameter must be a flag of the pipeline's options (``KafkaOptions``, ``PropertyOptions``) and
every such flag a parameter, except where a value form cannot work through a template:

- boolean flags (``store_true``, e.g. ``--commit_offsets``) reject ``--flag=true``:
  ``template_argv`` turns ``--flag=true`` into ``--flag`` and drops ``--flag=false``;
- ``--kafka_property`` is repeatable, a parameter is given once: the template takes
  ``kafka_properties=KEY=VALUE;KEY=VALUE`` and ``template_argv`` expands it.

``metadata_problems`` lists every mismatch (the unit test asserts there is none), so an option added
to the pipeline without its template parameter, or a parameter naming no option, fails the tests.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import KafkaOptions, PropertyOptions

METADATA_PATH = Path(__file__).with_name("metadata.json")
PIPELINE_OPTION_CLASSES: tuple[type[PipelineOptions], ...] = (KafkaOptions, PropertyOptions)
# Template-only parameter -> the repeatable pipeline flag it expands to.
KAFKA_PROPERTIES_PARAMETER = "kafka_properties"
REPEATED_FLAG_PARAMETERS = {"kafka_property": KAFKA_PROPERTIES_PARAMETER}
# Parameters a launch cannot do without (their flags have no default and the config needs them).
REQUIRED_PARAMETERS = frozenset({"bootstrap_servers"})
# Fields of Dataflow's TemplateMetadata and ParameterMetadata (REST API, v1b3).
TEMPLATE_FIELDS = frozenset(
    {
        "name",
        "description",
        "parameters",
        "streaming",
        "supportsAtLeastOnce",
        "supportsExactlyOnce",
        "defaultStreamingMode",
    }
)
PARAMETER_FIELDS = frozenset(
    {"name", "label", "helpText", "isOptional", "regexes", "paramType", "customMetadata"}
)
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def pipeline_flags(
    classes: Sequence[type[PipelineOptions]] = PIPELINE_OPTION_CLASSES,
) -> dict[str, argparse.Action]:
    """Flag name (argparse dest) -> its action, for every flag the option classes declare."""
    flags: dict[str, argparse.Action] = {}
    for cls in classes:
        parser = argparse.ArgumentParser(add_help=False)
        cls._add_argparse_args(parser)  # Beam's own hook: how PipelineOptions learns the flags
        for action in parser._actions:
            flags[action.dest] = action
    return flags


def _boolean_flags(flags: Mapping[str, argparse.Action]) -> set[str]:
    return {name for name, action in flags.items() if isinstance(action, argparse._StoreTrueAction)}


def template_argv(
    argv: Sequence[str], flags: Mapping[str, argparse.Action] | None = None
) -> list[str]:
    """``argv`` as the launcher gives it, rewritten into flags the pipeline's parser accepts.

    ``--flag=true|false`` of a boolean flag becomes ``--flag`` or nothing; ``--kafka_properties=
    K=V;K=V`` becomes one ``--kafka_property=K=V`` each. Everything else passes unchanged.
    """
    flags = pipeline_flags() if flags is None else flags
    booleans = _boolean_flags(flags)
    out: list[str] = []
    for arg in argv:
        name, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep:
            out.append(arg)
        elif name in booleans:
            if value.lower() in _TRUE:
                out.append(f"--{name}")
            elif value.lower() not in _FALSE:
                raise ValueError(f"--{name}={value}: give true or false")
        elif name == KAFKA_PROPERTIES_PARAMETER:
            out.extend(f"--kafka_property={item.strip()}" for item in value.split(";") if item)
        else:
            out.append(arg)
    return out


def load_metadata(path: Path = METADATA_PATH) -> dict[str, Any]:
    """The template's metadata (``metadata.json``)."""
    with open(path) as fh:
        return json.load(fh)


def sample_value(name: str, action: argparse.Action | None) -> str:
    """A realistic value for parameter ``name``, as a user would type it (for checks)."""
    if name == KAFKA_PROPERTIES_PARAMETER:
        return "security.protocol=SASL_SSL;sasl.mechanism=SCRAM-SHA-512"
    if action is None:
        return "x"
    if action.choices:
        return str(list(action.choices)[-1])
    if isinstance(action, argparse._StoreTrueAction):
        return "true"
    if action.type is int:
        return "1700000000000" if name.endswith("_ms") else "7"
    if action.type is float:
        return "2.5"
    if name == "redis_url":
        return "redis://10.0.0.3:6379"
    if name.endswith("_url"):
        return "https://marketdata.example.com:8443"
    if name.endswith("_expansion_service"):
        return "expansion.example.com:8096"
    if name == "bootstrap_servers":
        return "broker-1.example.com:9092,broker-2.example.com:9092"
    return "some-value"


def metadata_problems(
    metadata: Mapping[str, Any],
    classes: Sequence[type[PipelineOptions]] = PIPELINE_OPTION_CLASSES,
) -> list[str]:
    """Every way ``metadata`` disagrees with the pipeline's options; [] when none.

    Checks: only fields Dataflow knows; each parameter has name/label/helpText; names are flags
    (or the template-only ``kafka_properties``), each once; every flag is a parameter; only
    ``REQUIRED_PARAMETERS`` are required; regexes compile and accept a realistic value
    (``sample_value``) and every choice of a flag with choices; and ``--name=<value>``
    rewritten by ``template_argv`` parses with the pipeline's ``PipelineOptions`` to a value.
    """
    flags = pipeline_flags(classes)
    problems: list[str] = []
    for unknown in sorted(set(metadata) - TEMPLATE_FIELDS):
        problems.append(f"{unknown!r} is no field of Dataflow's TemplateMetadata")
    params = metadata.get("parameters", [])
    names = [p.get("name") for p in params]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"parameter {dup!r} appears more than once")
    template_only = set(REPEATED_FLAG_PARAMETERS.values())
    expected = (set(flags) - set(REPEATED_FLAG_PARAMETERS)) | template_only
    for missing in sorted(expected - set(names)):
        problems.append(f"pipeline flag --{missing} has no template parameter")
    for param in params:
        name = param.get("name")
        for unknown in sorted(set(param) - PARAMETER_FIELDS):
            problems.append(f"parameter {name!r}: {unknown!r} is no field of ParameterMetadata")
        for key in ("name", "label", "helpText"):
            if not str(param.get(key, "")).strip():
                problems.append(f"parameter {name!r}: {key} is empty")
        if name not in expected:
            problems.append(f"parameter {name!r} is no flag of {[c.__name__ for c in classes]}")
            continue
        required = not param.get("isOptional", False)
        if required != (name in REQUIRED_PARAMETERS):
            want = "required" if name in REQUIRED_PARAMETERS else "optional (isOptional: true)"
            problems.append(f"parameter {name!r} must be {want}")
        action = flags.get(name)
        problems.extend(_regex_problems(name, param.get("regexes", []), action))
        problems.extend(_parse_problems(name, action, flags))
    return problems


def _regex_problems(name: str, regexes: Sequence[str], action: argparse.Action | None) -> list[str]:
    problems = []
    values = [sample_value(name, action)]
    if action is not None and action.choices:
        values = [str(c) for c in action.choices]
    for pattern in regexes:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            problems.append(f"parameter {name!r}: regex {pattern!r} does not compile: {exc}")
            continue
        for value in values:
            if not compiled.fullmatch(value):
                problems.append(f"parameter {name!r}: regex {pattern!r} rejects {value!r}")
    return problems


def _parse_problems(
    name: str, action: argparse.Action | None, flags: Mapping[str, argparse.Action]
) -> list[str]:
    value = sample_value(name, action)
    try:
        argv = template_argv([f"--{name}={value}"], flags)
        options = PipelineOptions(argv).get_all_options(retain_unknown_options=True)
    except (SystemExit, ValueError) as exc:  # argparse exits on a value it rejects
        return [f"parameter {name!r}: --{name}={value} does not parse ({exc!r})"]
    flag_of_parameter = {param: flag for flag, param in REPEATED_FLAG_PARAMETERS.items()}
    dest = flag_of_parameter.get(name, name)
    if options.get(dest) in (None, [], False):
        return [f"parameter {name!r}: --{name}={value} leaves --{dest} unset"]
    return []
