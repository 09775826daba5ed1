"""``python -m bench.latency``: see ``bench.latency.cli``."""

from bench.latency.cli import main

raise SystemExit(main())
