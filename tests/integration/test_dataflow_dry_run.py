"""The property pipeline's Dataflow job, built offline and checked step by step.

A real Java expansion service (Beam's default environment, the project's classpath) expands the
Kafka transforms; ``pipelines.property.start`` builds the job with ``--runner=DataflowRunner
--dry_run=True``, so Beam does everything up to the API call: no GCP credentials, no network.
The streaming job and a bounded (backfill) job are built once per module (~30 s each on 2 busy
cores) and each test checks one property.
"""

from __future__ import annotations

import json

import apache_beam
import pytest
from apache_beam.portability.api import beam_runner_api_pb2

from pipelines.options import PropertyTopics
from runners.dataflow.expansion import DEFAULT_CLASSPATH_DIR, expansion_service
from runners.dataflow.job import (
    JAVA_DOFN_URN,
    KAFKA_BOUNDED_READ_DOFN,
    KAFKA_READ_DOFN,
    KAFKA_WRITE_DOFN,
    PARDO_URN,
    JobSpec,
    dry_run,
    images_at_submission,
)
from transforms.io.kafka import EXPANSION_SERVICE_KEY

pytestmark = pytest.mark.integration

BEAM = apache_beam.__version__
JAVA_IMAGE = f"apache/beam_java17_sdk:{BEAM}"
PYTHON_IMAGE = f"gcr.io/cloud-dataflow/v1beta3/beam_python3.11_sdk:{BEAM}"
EXTERNAL_ENV_URN = "beam:env:external:v1"
BROKERS = "broker-1.internal:9092,broker-2.internal:9092"
MARKETDATA = "http://marketdata.internal:8080"
SECRET = "dry-run-s3cret-never-in-the-spec"


@pytest.fixture(scope="module")
def default_env_expansion_service() -> str:
    """Beam's expansion service with Kafka IO, default (Docker) environment; stopped at the end."""
    with expansion_service(DEFAULT_CLASSPATH_DIR) as address:
        yield address


@pytest.fixture(scope="module")
def client_properties(tmp_path_factory) -> str:
    """A SASL_SSL client properties file holding ``SECRET``, as a user's cluster needs."""
    path = tmp_path_factory.mktemp("client") / "client.properties"
    path.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="pipeline" password="{SECRET}";\n'
    )
    return str(path)


@pytest.fixture(scope="module")
def job(default_env_expansion_service, client_properties):
    """The job of a streaming run, as Beam would send it to Dataflow."""
    argv = [
        f"--kafka_config_file={client_properties}",
        "--runner=DataflowRunner",
        "--dry_run=True",
        "--project=property-streams-test",
        "--region=us-central1",
        "--temp_location=gs://bucket/tmp",
        "--setup_file=./setup.py",
        f"--bootstrap_servers={BROKERS}",
        f"--marketdata_url={MARKETDATA}",
        "--consumer_group=property-pipeline",
        "--commit_offsets",
        # Scaling: Dataflow's throughput-based autoscaling up to 10 workers of 2 vCPUs each
        # (Streaming Engine is added by Beam for a streaming job on Runner v2).
        "--autoscaling_algorithm=THROUGHPUT_BASED",
        "--max_num_workers=10",
        "--machine_type=n2-standard-2",
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: default_env_expansion_service}),
    ]
    # classpath_dir=None: use the fixture's service (from --beam_services), start none of our own.
    built, _ = dry_run(argv, classpath_dir=None)
    return built


@pytest.fixture(scope="module")
def spec(job) -> JobSpec:
    return JobSpec.of(job)


def test_job_reads_both_input_topics_with_kafkas_splittable_java_dofn(spec):
    assert sorted(t for read in spec.kafka_reads for t in read.topics) == [
        "property-events",
        "property-views",
    ]
    for read in spec.kafka_reads:
        assert read.bootstrap_servers == BROKERS
        assert (read.transform_urn, read.dofn_urn) == (PARDO_URN, JAVA_DOFN_URN)
        assert read.dofn_class.startswith(KAFKA_READ_DOFN)
        assert read.splittable, f"{read.dofn_transform} is not the SDF Kafka read"


def test_job_writes_every_contract_output_topic_with_kafkas_java_writer(spec):
    defaults = PropertyTopics()
    outputs = set(vars(defaults).values()) - {defaults.events, defaults.views}
    assert sorted(t for write in spec.kafka_writes for t in write.topics) == sorted(outputs)
    for write in spec.kafka_writes:
        assert write.bootstrap_servers == BROKERS
        assert (write.transform_urn, write.dofn_urn) == (PARDO_URN, JAVA_DOFN_URN)
        assert write.dofn_class == KAFKA_WRITE_DOFN


def test_kafka_steps_run_in_beams_default_java_container_not_external(spec):
    steps = [*spec.kafka_reads, *spec.kafka_writes]
    assert len(steps) == 9
    java_envs = {spec.environment_of(step) for step in steps}
    assert len(java_envs) == 1
    (java,) = java_envs
    assert (java.urn, java.container_image) == ("beam:env:docker:v1", JAVA_IMAGE)
    assert EXTERNAL_ENV_URN not in {env.urn for env in spec.environments.values()}
    # The expansion service's classpath travels as staged jars; the Java harness loads them.
    jars = " ".join(java.staged_artifacts)
    assert f"beam-sdks-java-io-kafka-{BEAM}-" in jars
    assert "kafka-clients-" in jars


def test_job_has_nothing_dataflow_would_reject(spec):
    assert spec.problems() == []


def test_at_submission_workers_pull_beams_java_image_from_dataflows_registry(job, spec):
    java_env = spec.kafka_reads[0].environment_id
    assert (
        spec.submitted_images[java_env] == f"gcr.io/cloud-dataflow/v1beta3/beam_java17_sdk:{BEAM}"
    )
    # A private copy (no internet on the workers) replaces it by a regex override.
    mirror = f"europe-docker.pkg.dev/p/mirror/beam_java17_sdk:{BEAM}"
    images = images_at_submission(job, [f".*beam_java17_sdk.*,{mirror}"])
    assert images[java_env] == mirror
    assert set(images.values()) == {mirror, PYTHON_IMAGE}


def test_python_steps_run_in_dataflows_python_container(job, spec):
    java_env = spec.kafka_reads[0].environment_id
    python_envs = {env_id for env_id in spec.environments if env_id != java_env}
    assert len(python_envs) == 1
    (python_env,) = python_envs
    assert spec.environments[python_env].container_image == PYTHON_IMAGE
    proto: beam_runner_api_pb2.Pipeline = job.proto_pipeline
    python_steps = [
        t
        for t in proto.components.transforms.values()
        if t.spec.urn == PARDO_URN
        and beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload).do_fn.urn != JAVA_DOFN_URN
    ]
    assert python_steps, "no Python DoFn in the job"
    assert {t.environment_id for t in python_steps} == {python_env}


def test_setup_file_package_carries_the_pipeline_code_and_schemas(spec):
    python_env = next(
        env for env in spec.environments.values() if env.container_image == PYTHON_IMAGE
    )
    assert "workflow.tar.gz" in python_env.staged_artifacts
    files = set(spec.python_package)
    for needed in (
        "pipelines/property.py",
        "pipelines/options/__init__.py",
        "transforms/io/kafka.py",
        "schemas/property_event.avsc",
        "schemas/property_view.avsc",
        "setup.py",
        "pyproject.toml",
    ):
        assert needed in files, f"{needed} is not in the --setup_file package"
    # Only what the workers run: the entry points stay behind (tests/test_worker_package.py).
    shipped = {f.split("/")[0] for f in files if "/" in f}
    assert shipped == {"pipelines", "transforms", "schemas", "property_streams.egg-info"}, shipped


def test_pipeline_options_reach_the_job(spec):
    options = spec.options
    assert options["runner"] == "DataflowRunner"
    assert options["setup_file"] == "./setup.py"
    assert options["bootstrap_servers"] == BROKERS
    assert options["marketdata_url"] == MARKETDATA
    assert options["consumer_group"] == "property-pipeline"
    assert options["commit_offsets"] is True
    assert options["project"] == "property-streams-test"
    assert options["region"] == "us-central1"
    assert options["temp_location"].startswith("gs://bucket/tmp/")


def test_the_job_autoscales_throughput_based_up_to_max_num_workers(job, spec):
    """The worker pool Beam would submit (a dry run stops before Beam stages files and builds
    the job's environment, so it is built here from the job's own options, as Beam does)."""
    from apache_beam.runners.dataflow.internal import apiclient

    environment = apiclient.Environment(
        packages=[],
        options=job.options,
        environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url="gs://bucket/tmp/pipeline.pb",
        proto_pipeline=job.proto_pipeline,
    ).proto
    pool = environment.workerPools[0]
    assert pool.autoscalingSettings.algorithm.name == "AUTOSCALING_ALGORITHM_BASIC"
    assert pool.autoscalingSettings.maxNumWorkers == 10
    assert pool.machineType == "n2-standard-2"
    # One Python SDK container per vCPU of a worker (Beam's default for Dataflow).
    assert "use_multiple_sdk_containers" in environment.experiments
    assert spec.options["max_num_workers"] == 10


def test_an_unbounded_run_is_a_streaming_engine_job_on_runner_v2(spec):
    assert spec.job_type == "JOB_TYPE_STREAMING"
    assert spec.options["streaming"] is True
    assert {"use_runner_v2", "enable_streaming_engine"} <= set(spec.options["experiments"])
    # Stateful steps (late gate, counts) and the SDF read: Dataflow must support both.
    assert {
        "beam:requirement:pardo:stateful:v1",
        "beam:requirement:pardo:splittable_dofn:v1",
    } <= set(spec.requirements)


@pytest.fixture(scope="module")
def bounded_spec(default_env_expansion_service) -> JobSpec:
    """A backfill: the read stops after 10 minutes. No --setup_file: the default must stage it."""
    argv = [
        "--project=property-streams-test",
        "--temp_location=gs://bucket/tmp",
        f"--bootstrap_servers={BROKERS}",
        "--max_read_time_s=600",
        "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: default_env_expansion_service}),
    ]
    _, spec = dry_run(argv, classpath_dir=None)
    return spec


def test_a_bounded_run_is_a_batch_job_reading_kafka_through_the_bounded_source(bounded_spec):
    assert bounded_spec.job_type == "JOB_TYPE_BATCH"
    assert bounded_spec.problems() == []
    assert len(bounded_spec.kafka_reads) == 2
    assert len(bounded_spec.kafka_writes) == 7
    for read in bounded_spec.kafka_reads:
        # KafkaIO's legacy source wrapped as bounded, not the SDF read of a streaming run.
        assert read.dofn_class == KAFKA_BOUNDED_READ_DOFN
        assert not read.splittable
        assert bounded_spec.environment_of(read).container_image == JAVA_IMAGE
    assert "pipelines/property.py" in bounded_spec.python_package


def test_the_kafka_password_is_not_in_the_job_only_a_reference_to_the_file(job, client_properties):
    """The Java clients resolve the reference on the worker (docs/security.md)."""
    pipeline = job.proto_pipeline.SerializeToString()
    assert SECRET.encode() not in pipeline
    assert SECRET not in str(job.proto)
    reference = f"${{beamsecretfile:{client_properties}:sasl.jaas.config}}"
    assert reference.encode() in pipeline
