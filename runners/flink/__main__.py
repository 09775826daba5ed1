"""``python -m runners.flink``."""

import sys

from runners.flink.cli import main

sys.exit(main())
