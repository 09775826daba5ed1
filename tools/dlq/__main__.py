"""``python -m tools.dlq``: see ``tools.dlq.cli``."""

from tools.dlq.cli import main

raise SystemExit(main())
