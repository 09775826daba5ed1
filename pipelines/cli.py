"""``--help`` of a Beam pipeline's command line: the pipeline's own options, then Beam's, grouped.

Beam parses pipeline flags with one parser assembled from every ``PipelineOptions`` subclass in
the process, and prints no help of its own (``python -m pipelines.property --help`` showed only
``-h``). ``pipeline_help`` assembles the same options the way Beam does, each class in its own
titled group: the project's classes first (in definition order), then Beam's, by class name.
Option classes of the project's other pipelines, named by the caller, are left out (the pipeline
ignores them).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from apache_beam.options import pipeline_options as beam_options
from apache_beam.options.pipeline_options import PipelineOptions

HELP_FLAGS = ("-h", "--help")


class _GroupAdder:
    """What ``PipelineOptions._add_argparse_args`` calls on a parser, sent to one help group."""

    def __init__(self, parser: argparse.ArgumentParser, title: str, description: str | None):
        self._parser = parser
        self._title = title
        self._description = description
        self._created: Any = None

    @property
    def _group(self) -> Any:
        # Created on first use: a class that only adds sub-groups leaves no empty heading.
        if self._created is None:
            self._created = self._parser.add_argument_group(self._title, self._description)
        return self._created

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        return self._group.add_argument(*args, **kwargs)

    def add_value_provider_argument(self, *args: Any, **kwargs: Any) -> None:
        # Beam's own method rewrites type/default for templates, then calls self.add_argument.
        beam_options._BeamArgumentParser.add_value_provider_argument(self, *args, **kwargs)

    def add_argument_group(self, title: str | None = None, description: str | None = None):
        return _GroupAdder(self._parser, f"{self._title}: {title}", description)

    def add_mutually_exclusive_group(self, **kwargs: Any):
        return self._group.add_mutually_exclusive_group(**kwargs)


def _first_line(doc: str | None) -> str | None:
    return doc.strip().splitlines()[0] if doc and doc.strip() else None


def _option_classes() -> list[type[PipelineOptions]]:
    """Every ``PipelineOptions`` subclass, one per name (as Beam dedupes them), in definition
    order."""
    unique: dict[str, type[PipelineOptions]] = {}
    for cls in PipelineOptions.__subclasses__():
        unique.setdefault(str(cls), cls)
    return list(unique.values())


def beam_option_classes() -> list[type[PipelineOptions]]:
    """Beam's ``PipelineOptions`` subclasses, in name order."""
    beam = [c for c in _option_classes() if c.__module__.startswith("apache_beam.")]
    return sorted(beam, key=lambda c: c.__name__)


def project_option_classes(
    not_ours: Sequence[type[PipelineOptions]] = (),
) -> list[type[PipelineOptions]]:
    """The project's ``PipelineOptions`` subclasses but ``not_ours``, in definition order."""
    return [
        c
        for c in _option_classes()
        if not c.__module__.startswith("apache_beam.") and c not in not_ours
    ]


def help_parser(
    prog: str, description: str | None, not_ours: Sequence[type[PipelineOptions]] = ()
) -> argparse.ArgumentParser:
    """A parser holding the project's options (but ``not_ours``), then Beam's, one group per
    options class."""
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [--option=value ...]",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    for cls in project_option_classes(not_ours):
        cls._add_argparse_args(_GroupAdder(parser, cls.__name__, _first_line(cls.__doc__)))
    from pipelines.launch import add_launch_arguments  # the entry point's side

    add_launch_arguments(
        _GroupAdder(parser, "Launch", "Read by the launcher (not pipeline options).")
    )
    for cls in beam_option_classes():
        title = f"Beam {cls.__name__}"
        cls._add_argparse_args(_GroupAdder(parser, title, _first_line(cls.__doc__)))
    return parser


def exit_with_help_if_asked(
    argv: Sequence[str],
    prog: str,
    description: str | None,
    not_ours: Sequence[type[PipelineOptions]] = (),
) -> None:
    """Print the pipeline's help and exit 0 when ``argv`` asks for it (``-h``/``--help``)."""
    if any(arg in HELP_FLAGS for arg in argv):
        help_parser(prog, description, not_ours).print_help()
        raise SystemExit(0)
