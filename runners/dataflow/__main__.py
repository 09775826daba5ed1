"""``python -m runners.dataflow dry-run|submit [--classpath-dir DIR] -- <pipeline flags>``.

- ``dry-run``: builds the property pipeline's Dataflow job offline (``--dry_run=True``; placeholder
  ``--project``/``--region``/``--temp_location`` when not given; no credentials, no network) and
  prints its spec as JSON: Kafka reads/writes with topics and Java DoFns, environments and their
  container images, the files of the ``--setup_file`` package, the options. Exit status 1 when
  the job would fail on Dataflow (``JobSpec.problems``: e.g. an EXTERNAL environment).
- ``submit``: builds and submits the job to Dataflow (needs a GCP project and credentials);
  prints the job id and returns without waiting. The flex template's launcher runs this.

Both start Beam's expansion service in its default (Docker) environment from ``--classpath-dir``
(``.local/lib/expansion-service``) unless the pipeline flags carry ``--beam_services``;
``--beam-default-expansion`` leaves Kafka IO to Beam's own expansion service (a jar downloaded
from Maven Central, run with ``java``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from runners.dataflow.expansion import DEFAULT_CLASSPATH_DIR
from runners.dataflow.job import dry_run, submit

_LOG = logging.getLogger("runners.dataflow")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runners.dataflow",
        description="Build offline (dry-run) or submit the property pipeline's Dataflow job. "
        "Pipeline flags (python -m pipelines.property --help) go after '--'.",
    )
    parser.add_argument("command", choices=["dry-run", "submit"])
    parser.add_argument(
        "--classpath-dir",
        type=Path,
        default=DEFAULT_CLASSPATH_DIR,
        help="Jars of Beam's expansion service with Kafka IO (default: %(default)s).",
    )
    parser.add_argument(
        "--beam-default-expansion",
        action="store_true",
        help="Do not start an expansion service: let Beam download and run its own jar.",
    )
    return parser


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(our arguments, the pipeline's): everything after the first '--' is the pipeline's."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    ours, pipeline_argv = _split(sys.argv[1:] if argv is None else argv)
    args, unknown = _parser().parse_known_args(ours)
    pipeline_argv = [*unknown, *pipeline_argv]
    classpath_dir = None if args.beam_default_expansion else args.classpath_dir
    if args.command == "dry-run":
        _, spec = dry_run(pipeline_argv, classpath_dir=classpath_dir)
        print(json.dumps(spec.to_json(), indent=2, sort_keys=True))
        for problem in spec.problems():
            _LOG.error("the job would fail on Dataflow: %s", problem)
        return 1 if spec.problems() else 0
    result = submit(pipeline_argv, classpath_dir=classpath_dir)
    if hasattr(result, "job_id"):
        print(f"submitted Dataflow job {result.job_id()} (state {result.state})")
    else:  # --dry_run=True among the pipeline flags: built, nothing sent
        print(f"built the Dataflow job {result.job.proto.name} (dry run, nothing submitted)")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(main())
