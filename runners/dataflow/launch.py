"""Flex template entry point (``FLEX_TEMPLATE_PYTHON_PY_FILE``): submit the job, do not wait.

Dataflow's launcher runs this file with the template's parameters and its own options
(``--project``, ``--region``, ``--temp_location``, ...) as ``--name=value`` arguments. A streaming
job never finishes, so the launch must return once the job is submitted (``submit``, not
``run``). Boolean and repeated flags arrive in template form (``--commit_offsets=true``,
``--kafka_properties=K=V;K=V``) and are rewritten by ``template_argv``. Kafka IO is expanded by
the expansion service started from the jars the Dockerfile puts in
``/template/.local/lib/expansion-service``.
"""

from __future__ import annotations

import logging
import sys

from runners.dataflow.__main__ import main
from runners.dataflow.template import template_argv

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(main(["submit", "--", *template_argv(sys.argv[1:])]))
