"""The property pipeline on Google Cloud Dataflow: offline job builds, submission, flex template.

- ``expansion``: Beam's Kafka expansion service in its default (Docker) environment, the one a
  Dataflow job needs (the local stack's EXTERNAL environment would point workers at this machine).
- ``job``: ``dry_run(argv)`` builds the job offline (no credentials, no network) and ``JobSpec``
  reads it; ``submit(argv)`` submits it.
- ``python -m runners.dataflow dry-run|submit -- <pipeline flags>``: the same from a shell.
- ``launch.py``, ``Dockerfile``, ``metadata.json``: the flex template (README.md).
"""
