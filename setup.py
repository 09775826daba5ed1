"""Stub so that Dataflow's ``--setup_file=./setup.py`` works; metadata lives in pyproject.toml."""

import setuptools

setuptools.setup()
