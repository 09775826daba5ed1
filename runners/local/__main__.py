"""``python -m runners.local``: see ``runners.local.cli``."""

import sys

from runners.local.cli import main

sys.exit(main())
