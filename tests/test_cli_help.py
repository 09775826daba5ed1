"""``--help`` on every entry point lists every option that entry point accepts.

For argparse commands the accepted options are read from the parser the command itself builds
(recorded when it parses ``--help``), subcommands included; for the Beam pipelines they are the
options of every Beam ``PipelineOptions`` class plus the project's, as Beam's own parser takes
them.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import _BeamArgumentParser

from pipelines.cli import beam_option_classes, project_option_classes
from pipelines.options import KafkaOptions, PassthroughOptions, PropertyOptions
from runners.install import REPO_ROOT

ARGPARSE_COMMANDS = [
    "tools.simulate.cli",
    "tools.dlq.cli",
    "tools.demo",
    "runners.local.cli",
    "runners.flink",
    "runners.install",
    "runners.dataflow.__main__",
    "runners.marketdata.__main__",
    "bench.compare",
    "bench.latency.cli",
    "bench.latency_attribution.cli",
    "bench.enrichment",
    "bench.passthrough",
    "bench.profile_pyspy",
    "bench.codec",
    "bench.scaling",
]


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string ``parser`` accepts, its subcommands' included."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


def _listed(option: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def _help_of(module: str, capsys, monkeypatch) -> tuple[str, argparse.ArgumentParser]:
    """(stdout of ``main(['--help'])``, the first parser it parsed with)."""
    parsers: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_known_args

    def recording(self, args=None, namespace=None):
        parsers.append(self)
        return original(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", recording)
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code in (0, None)
    assert parsers, f"{module} --help parsed nothing"
    return capsys.readouterr().out, parsers[0]


@pytest.mark.parametrize("module", ARGPARSE_COMMANDS)
def test_help_lists_every_option_of_the_command_and_its_subcommands(module, capsys, monkeypatch):
    text, parser = _help_of(module, capsys, monkeypatch)
    accepted = _option_strings(parser)
    missing = sorted(o for o in accepted if not _listed(o, text))
    assert not missing, f"python -m {module} --help does not list {missing}"


def _beam_accepted(not_ours) -> set[str]:
    """What Beam's parser accepts for a pipeline (built as PipelineOptions.get_all_options does)."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in [*beam_option_classes(), *project_option_classes(not_ours)]:
        cls._add_argparse_args(parser)
    return _option_strings(parser)


def _check_pipeline_help(text: str, own: list, not_ours) -> None:
    missing = sorted(o for o in _beam_accepted(not_ours) if not _listed(o, text))
    assert not missing, f"--help does not list {missing}"
    for option in ("--runner", "--streaming", "--job_endpoint", "--environment_type"):
        assert _listed(option, text)  # Beam's
    for cls in own:
        assert cls.__name__ in text
    assert "Beam StandardOptions" in text and "Beam PortableOptions" in text
    # The launcher's own option (pipelines/launch.py), not a pipeline option.
    assert _listed("--profile", text) and "throughput,latency" in text
    # Ours first, then Beam's.
    assert text.index("\n  --bootstrap_servers") < text.index("\n  --runner")


def test_the_property_pipeline_help_lists_its_options_then_every_beam_option_grouped():
    # The README's command, as a user runs it.
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.property", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    _check_pipeline_help(text, [PropertyOptions, KafkaOptions], (PassthroughOptions,))
    for option in ("--events_topic", "--window_size_s", "--stop_read_time_ms"):
        assert _listed(option, text)
    assert not _listed("--input_topic", text)  # the passthrough's, ignored here


def test_the_passthrough_pipeline_help_lists_its_options_then_every_beam_option(capsys):
    from pipelines import passthrough

    with pytest.raises(SystemExit) as exit_info:
        passthrough.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    _check_pipeline_help(text, [PassthroughOptions, KafkaOptions], (PropertyOptions,))
    assert _listed("--input_topic", text) and not _listed("--events_topic", text)
