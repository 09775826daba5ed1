"""The one error a bad option raises: its message names the flag and what to give."""

from __future__ import annotations


class OptionError(ValueError):
    """A pipeline option is missing or wrong; the message names the flag and what to give."""
