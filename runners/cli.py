"""Command-line helpers shared by the project's entry points.

``FullHelpParser`` is an ``argparse.ArgumentParser`` whose ``--help`` also prints every
subcommand's options, so one ``--help`` lists every option the command accepts (plain argparse
shows only the subcommand names, leaving the options behind ``<command> --help``).
"""

from __future__ import annotations

import argparse


class FullHelpParser(argparse.ArgumentParser):
    """``format_help`` = this parser's help, then each subcommand's help under its name."""

    def format_help(self) -> str:
        parts = [super().format_help()]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    parts.append(f"\n=== {self.prog} {name} ===\n{sub.format_help()}")
        return "".join(parts)
