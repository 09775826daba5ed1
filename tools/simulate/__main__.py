"""``python -m tools.simulate``: see ``tools.simulate.cli``."""

from tools.simulate.cli import main

raise SystemExit(main())
