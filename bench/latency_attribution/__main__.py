"""``python -m bench.latency_attribution``: see ``bench.latency_attribution.cli``."""

from bench.latency_attribution.cli import main

raise SystemExit(main())
