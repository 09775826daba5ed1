"""The property pipeline as a Dataflow job: built offline (dry run) or submitted, and its spec read.

``submit(argv)`` runs the pipeline's own construction path (``pipelines.property.start``) with
``--runner=DataflowRunner``. Kafka IO is expanded by an expansion service in Beam's default
(Docker) environment: the one given with ``--beam_services``, else one started from the
project's classpath (``runners.dataflow.expansion``) for as long as the job is built, else (no
jars) Beam's own default, which downloads Beam's shaded expansion-service jar from Maven Central
and needs ``java`` on PATH. ``submit`` returns once the job is submitted; it never waits for a
streaming job.

``dry_run(argv)`` does the same with ``--dry_run=True``: Beam builds the complete job (pipeline
proto, environments, staged artifacts, options) and stops before calling Google's API, so it needs
no credentials and no network. ``JobSpec.of(job)`` reads what matters from that job: the Kafka
reads and writes (found by the Java classes Beam's ``KafkaIO`` expands to, since the expanded
composites carry no URN of their own), every environment with its container image and staged
artifacts, the files of the Python package built from ``--setup_file``, and the options.
"""

from __future__ import annotations

import copy
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from apache_beam.options.pipeline_options import WorkerOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.dataflow.internal.apiclient import DataflowApplicationClient
from apache_beam.runners.runner import PipelineResult

from runners.dataflow.expansion import DEFAULT_CLASSPATH_DIR, REPO_ROOT, expansion_service
from runners.presets import flag_value, has_flag
from transforms.io.kafka import EXPANSION_SERVICE_KEY

DATAFLOW_RUNNER = "DataflowRunner"
# Placeholders that let a dry run build the job without a real project (nothing is contacted).
DRY_RUN_DEFAULTS = {
    "project": "dry-run-project",
    "region": "us-central1",
    "temp_location": "gs://dry-run-bucket/tmp",
}

PARDO_URN = "beam:transform:pardo:v1"
DOCKER_ENV_URN = "beam:env:docker:v1"
JAVA_DOFN_URN = "beam:dofn:javasdk:0.1"
STAGING_ROLE_URN = "beam:artifact:role:staging_to:v1"
# Display-data namespaces of Beam Java's KafkaIO composites, and the DoFns that do the I/O.
KAFKA_READ_NAMESPACE = "org.apache.beam.sdk.io.kafka.KafkaIO$Read"
KAFKA_WRITE_NAMESPACE = "org.apache.beam.sdk.io.kafka.KafkaIO$WriteRecords"
KAFKA_READ_DOFN = "org.apache.beam.sdk.io.kafka.ReadFromKafkaDoFn"  # unbounded: a splittable DoFn
# A bounded read (--max_records / --max_read_time_s) expands to KafkaIO's legacy source instead.
KAFKA_BOUNDED_READ_DOFN = "org.apache.beam.sdk.io.BoundedReadFromUnboundedSource$ReadFn"
KAFKA_WRITE_DOFN = "org.apache.beam.sdk.io.kafka.KafkaWriter"
# The Python package Beam builds from --setup_file is staged under this name.
SETUP_PACKAGE_STAGED_NAME = "workflow.tar.gz"


class JobSpecError(ValueError):
    """The job lacks something the spec needs (e.g. a Kafka transform without its Java DoFn)."""


@dataclass(frozen=True)
class EnvironmentSpec:
    """One environment of the job: where its SDK harness runs and what is staged for it."""

    id: str
    urn: str
    container_image: str | None
    staged_artifacts: tuple[str, ...]


@dataclass(frozen=True)
class KafkaStep:
    """A Kafka read or write as Dataflow runs it: the KafkaIO composite and its I/O DoFn."""

    name: str  # the KafkaIO composite, e.g. 'ReadEvents/ReadFromKafka/KafkaIO.Read'
    topics: tuple[str, ...]
    bootstrap_servers: str
    dofn_transform: str  # the leaf step doing the I/O
    transform_urn: str  # beam:transform:pardo:v1
    dofn_urn: str  # beam:dofn:javasdk:0.1 (a Java DoFn)
    dofn_class: str  # e.g. org.apache.beam.sdk.io.kafka.ReadFromKafkaDoFn$Unbounded
    splittable: bool  # a splittable DoFn (has a restriction coder): the SDF Kafka read
    environment_id: str


@dataclass(frozen=True)
class JobSpec:
    """What a Dataflow job built by Beam holds, in plain values (see the module docstring)."""

    name: str
    job_type: str  # JOB_TYPE_STREAMING | JOB_TYPE_BATCH
    environments: Mapping[str, EnvironmentSpec]
    kafka_reads: tuple[KafkaStep, ...]
    kafka_writes: tuple[KafkaStep, ...]
    python_package: tuple[str, ...]  # files of the --setup_file package, () -> none staged
    requirements: tuple[str, ...]
    # Container image per environment as submitted: Beam swaps Docker Hub images for Dataflow's
    # copies (gcr.io/cloud-dataflow/v1beta3/...) unless --sdk_harness_container_image_overrides.
    submitted_images: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, job: Any) -> JobSpec:
        """The spec of ``job``, Beam's ``apiclient.Job`` (``result.job`` of a dry run)."""
        proto: beam_runner_api_pb2.Pipeline = job.proto_pipeline
        environments = {
            env_id: _environment_spec(env_id, env)
            for env_id, env in proto.components.environments.items()
        }
        return cls(
            name=str(job.proto.name),
            job_type=str(job.proto.type.name),
            environments=MappingProxyType(environments),
            kafka_reads=tuple(
                _kafka_steps(
                    proto,
                    KAFKA_READ_NAMESPACE,
                    "topics",
                    (KAFKA_READ_DOFN, KAFKA_BOUNDED_READ_DOFN),
                )
            ),
            kafka_writes=tuple(
                _kafka_steps(proto, KAFKA_WRITE_NAMESPACE, "topic", (KAFKA_WRITE_DOFN,))
            ),
            python_package=_python_package_files(proto),
            requirements=tuple(proto.requirements),
            submitted_images=MappingProxyType(images_at_submission(job)),
            options=MappingProxyType(
                job.options.get_all_options(drop_default=True, retain_unknown_options=True)
            ),
        )

    def problems(self) -> list[str]:
        """What would make this job fail on Dataflow's workers; [] when none is seen.

        Beam's Dataflow runner accepts (and would submit) a job whose Java steps run in an
        EXTERNAL environment, e.g. when ``--beam_services`` names the local stack's expansion
        service; Google's workers cannot run it. Dataflow runs Docker environments only.
        """
        problems = [
            f"environment {env.id} is {env.urn}: Dataflow runs Docker environments only; expand "
            "Kafka IO with an expansion service in Beam's default environment "
            "(python -m runners.dataflow starts one), not the local stack's EXTERNAL one"
            for env in self.environments.values()
            if env.urn != DOCKER_ENV_URN
        ]
        staged = any(
            SETUP_PACKAGE_STAGED_NAME in env.staged_artifacts for env in self.environments.values()
        )
        if not staged and not self.options.get("sdk_container_image"):
            problems.append(
                "no --setup_file package is staged and no --sdk_container_image given: the "
                "workers could not import pipelines/ and transforms/; give --setup_file=./setup.py"
            )
        if not self.kafka_reads:
            problems.append("the job reads no Kafka topic")
        if not self.kafka_writes:
            problems.append("the job writes no Kafka topic")
        return problems

    def environment_of(self, step: KafkaStep) -> EnvironmentSpec:
        """The environment the step's I/O DoFn runs in."""
        return self.environments[step.environment_id]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; a Java environment's jars are summarised by count."""
        return {
            "name": self.name,
            "job_type": self.job_type,
            "environments": {
                env_id: {
                    "urn": env.urn,
                    "container_image": env.container_image,
                    "staged_artifacts": len(env.staged_artifacts)
                    if len(env.staged_artifacts) > 10
                    else list(env.staged_artifacts),
                }
                for env_id, env in self.environments.items()
            },
            "kafka_reads": [asdict(step) for step in self.kafka_reads],
            "kafka_writes": [asdict(step) for step in self.kafka_writes],
            "python_package_files": len(self.python_package),
            "requirements": list(self.requirements),
            "submitted_images": dict(self.submitted_images),
            "problems": self.problems(),
            "options": json.loads(json.dumps(dict(self.options), default=str)),
        }


def images_at_submission(job: Any, overrides: Sequence[str] | None = None) -> dict[str, str]:
    """Environment id -> the container image Dataflow's workers will pull for it.

    Applies to a copy of the job's pipeline what Beam applies when it submits (its Dataflow
    client's ``_apply_sdk_environment_overrides``, which needs no client or network):
    ``--sdk_harness_container_image_overrides`` (``overrides`` replaces them when given), and
    Beam's own images moved from Docker Hub to Dataflow's registry.
    """
    if overrides is None:
        overrides = job.options.view_as(WorkerOptions).sdk_harness_container_image_overrides
    pairs = dict(item.split(",", 1) for item in overrides or [])
    proto = copy.deepcopy(job.proto_pipeline)
    DataflowApplicationClient._apply_sdk_environment_overrides(proto, pairs, job.options)
    return {
        env_id: beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
        for env_id, env in proto.components.environments.items()
        if env.urn == DOCKER_ENV_URN
    }


def _display_data(transform: beam_runner_api_pb2.PTransform) -> list[tuple[str, str, Any]]:
    """``(namespace, key, value)`` of each labelled display-data item of ``transform``."""
    items = []
    for item in transform.display_data:
        payload = beam_runner_api_pb2.LabelledPayload.FromString(item.payload)
        kind = payload.WhichOneof("value")
        items.append((payload.namespace, payload.key, getattr(payload, kind) if kind else None))
    return items


def _descendants(
    proto: beam_runner_api_pb2.Pipeline, transform_id: str
) -> Iterator[beam_runner_api_pb2.PTransform]:
    stack = list(proto.components.transforms[transform_id].subtransforms)
    while stack:
        current = proto.components.transforms[stack.pop()]
        yield current
        stack.extend(current.subtransforms)


def _kafka_steps(
    proto: beam_runner_api_pb2.Pipeline,
    namespace: str,
    topics_key: str,
    dofn_prefixes: tuple[str, ...],
) -> Iterator[KafkaStep]:
    """Every KafkaIO composite with display-data ``namespace``, with its I/O DoFn (the first
    ParDo inside whose DoFn class starts with one of ``dofn_prefixes``)."""
    transforms = proto.components.transforms
    for transform_id in sorted(transforms, key=lambda t: transforms[t].unique_name):
        transform = transforms[transform_id]
        data = {key: value for ns, key, value in _display_data(transform) if ns == namespace}
        if not data:
            continue
        leaf = None
        for candidate in _descendants(proto, transform_id):
            classes = [v for _, key, v in _display_data(candidate) if key == "fn"]
            matching = [str(c) for c in classes if str(c).startswith(dofn_prefixes)]
            if candidate.spec.urn == PARDO_URN and matching:
                leaf, dofn_class = candidate, matching[0]
                break
        if leaf is None:
            raise JobSpecError(f"{transform.unique_name}: no step of {dofn_prefixes} inside")
        pardo = beam_runner_api_pb2.ParDoPayload.FromString(leaf.spec.payload)
        yield KafkaStep(
            name=transform.unique_name,
            topics=tuple(str(data.get(topics_key, "")).split(",")),
            bootstrap_servers=str(data.get("bootstrap.servers", "")),
            dofn_transform=leaf.unique_name,
            transform_urn=leaf.spec.urn,
            dofn_urn=pardo.do_fn.urn,
            dofn_class=dofn_class,
            splittable=bool(pardo.restriction_coder_id),
            environment_id=leaf.environment_id,
        )


def _staged_name(artifact: beam_runner_api_pb2.ArtifactInformation) -> str:
    if artifact.role_urn != STAGING_ROLE_URN:
        return ""
    return beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
        artifact.role_payload
    ).staged_name


def _environment_spec(env_id: str, env: beam_runner_api_pb2.Environment) -> EnvironmentSpec:
    image = None
    if env.urn == DOCKER_ENV_URN:
        image = beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
    return EnvironmentSpec(
        id=env_id,
        urn=env.urn,
        container_image=image,
        staged_artifacts=tuple(_staged_name(a) for a in env.dependencies),
    )


def _python_package_files(proto: beam_runner_api_pb2.Pipeline) -> tuple[str, ...]:
    """Files (paths inside the package) of the staged ``--setup_file`` sdist, if any.

    Beam builds the sdist into a temporary directory that outlives the run, so a dry run can
    look inside; a package staged from elsewhere (or already gone) gives ().
    """
    for env in proto.components.environments.values():
        for artifact in env.dependencies:
            if _staged_name(artifact) != SETUP_PACKAGE_STAGED_NAME:
                continue
            path = Path(
                beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path
            )
            if not path.is_file():
                return ()
            with tarfile.open(path) as sdist:
                # Drop the 'name-version/' directory the sdist puts everything in.
                return tuple(
                    sorted(m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name)
                )
    return ()


def dataflow_argv(argv: Sequence[str], *, dry_run: bool) -> list[str]:
    """``argv`` for Dataflow: ``--runner=DataflowRunner`` added when absent (another runner is an
    error); ``--setup_file`` of this repository unless a setup file or a worker image is given
    (the workers need our package); for a dry run ``--dry_run=True`` plus placeholder
    project/region/temp_location."""
    argv = list(argv)
    runner = flag_value(argv, "runner")
    if runner is None:
        argv.append(f"--runner={DATAFLOW_RUNNER}")
    elif runner.rsplit(".", 1)[-1] != DATAFLOW_RUNNER:
        raise ValueError(
            f"--runner={runner}: this command builds Dataflow jobs; drop --runner or give "
            f"--runner={DATAFLOW_RUNNER} (python -m pipelines.property runs on other runners)"
        )
    if not has_flag(argv, "setup_file") and not has_flag(argv, "sdk_container_image"):
        argv.append(f"--setup_file={REPO_ROOT / 'setup.py'}")
    if dry_run:
        if not has_flag(argv, "dry_run"):
            argv.append("--dry_run=True")
        for name, value in DRY_RUN_DEFAULTS.items():
            if not has_flag(argv, name):
                argv.append(f"--{name}={value}")
    return argv


def submit(
    argv: Sequence[str],
    *,
    dry_run: bool = False,
    classpath_dir: Path | None = DEFAULT_CLASSPATH_DIR,
) -> PipelineResult:
    """Builds (and unless ``dry_run``, submits) the property pipeline's Dataflow job.

    Without ``--beam_services`` in ``argv``, an expansion service in Beam's default environment
    is started from ``classpath_dir`` for the time the job is built; ``classpath_dir=None`` (or a
    directory without jars) leaves Kafka IO to Beam's own default expansion service instead.
    """
    from pipelines.property import start  # the pipeline's own construction path

    argv = dataflow_argv(argv, dry_run=dry_run)
    with ExitStack() as stack:
        if not has_flag(argv, "beam_services") and _has_jars(classpath_dir):
            address = stack.enter_context(expansion_service(classpath_dir))
            argv.append("--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: address}))
        return start(argv)


def dry_run(
    argv: Sequence[str], *, classpath_dir: Path | None = DEFAULT_CLASSPATH_DIR
) -> tuple[Any, JobSpec]:
    """The Dataflow job (Beam's ``apiclient.Job``) built offline for ``argv``, and its spec."""
    job = submit(argv, dry_run=True, classpath_dir=classpath_dir).job
    return job, JobSpec.of(job)


def _has_jars(classpath_dir: Path | None) -> bool:
    return classpath_dir is not None and any(Path(classpath_dir).glob("*.jar"))
