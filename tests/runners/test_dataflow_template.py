"""The flex template's metadata.json against the pipeline's real options, and argv handling.

No GCP, no Java: the metadata is checked by parsing each parameter with the pipeline's own
``PipelineOptions`` classes, so a parameter and an option cannot drift apart unnoticed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import KafkaOptions, PropertyOptions
from runners.dataflow.expansion import (
    REPO_ROOT,
    ExpansionServiceError,
    expansion_service,
    expansion_service_argv,
)
from runners.dataflow.job import (
    KAFKA_READ_DOFN,
    EnvironmentSpec,
    JobSpec,
    KafkaStep,
    dataflow_argv,
)
from runners.dataflow.template import (
    load_metadata,
    metadata_problems,
    pipeline_flags,
    template_argv,
)


@pytest.fixture(scope="module")
def metadata() -> dict:
    return load_metadata()


def _without(metadata: dict, name: str) -> dict:
    changed = copy.deepcopy(metadata)
    changed["parameters"] = [p for p in changed["parameters"] if p["name"] != name]
    return changed


def _param(metadata: dict, name: str) -> dict:
    return next(p for p in metadata["parameters"] if p["name"] == name)


def test_metadata_parameters_match_the_pipeline_options(metadata):
    assert metadata_problems(metadata) == []


def test_every_pipeline_flag_is_a_template_parameter_except_the_repeatable_one(metadata):
    names = {p["name"] for p in metadata["parameters"]}
    flags = set(pipeline_flags())
    assert flags - names == {"kafka_property"}
    assert names - flags == {"kafka_properties"}


def test_a_pipeline_option_without_a_template_parameter_is_reported(metadata):
    problems = metadata_problems(_without(metadata, "fraud_threshold"))
    assert problems == ["pipeline flag --fraud_threshold has no template parameter"]


def test_a_parameter_naming_no_pipeline_option_is_reported(metadata):
    changed = copy.deepcopy(metadata)
    changed["parameters"].append(
        {
            "name": "fraud_treshold",
            "label": "typo",
            "helpText": "a misspelt flag",
            "isOptional": True,
        }
    )
    assert any("'fraud_treshold' is no flag" in p for p in metadata_problems(changed))


def test_a_regex_rejecting_one_of_the_flags_choices_is_reported(metadata):
    changed = copy.deepcopy(metadata)
    _param(changed, "offset_reset")["regexes"] = ["^earliest$"]
    assert metadata_problems(changed) == [
        "parameter 'offset_reset': regex '^earliest$' rejects 'latest'"
    ]


def test_a_required_flag_marked_optional_is_reported(metadata):
    changed = copy.deepcopy(metadata)
    _param(changed, "bootstrap_servers")["isOptional"] = True
    assert metadata_problems(changed) == ["parameter 'bootstrap_servers' must be required"]


def test_a_field_dataflow_does_not_know_is_reported(metadata):
    changed = copy.deepcopy(metadata)
    _param(changed, "window_size_s")["default"] = "3600"
    assert metadata_problems(changed) == [
        "parameter 'window_size_s': 'default' is no field of ParameterMetadata"
    ]


def test_template_argv_turns_boolean_and_repeated_parameters_into_pipeline_flags():
    argv = template_argv(
        [
            "--commit_offsets=true",
            "--kafka_properties=security.protocol=SASL_SSL;sasl.mechanism=SCRAM-SHA-512",
            "--window_size_s=1800",
        ]
    )
    options = PipelineOptions(argv)
    assert options.view_as(PropertyOptions).commit_offsets is True
    assert options.view_as(PropertyOptions).window_size_s == 1800
    assert options.view_as(KafkaOptions).kafka_property == [
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
    ]


def test_template_argv_drops_a_false_boolean_and_rejects_other_words():
    assert template_argv(["--commit_offsets=false"]) == []
    with pytest.raises(ValueError, match="--commit_offsets=maybe: give true or false"):
        template_argv(["--commit_offsets=maybe"])


def test_a_boolean_flag_in_template_form_needs_the_rewrite():
    # What template_argv exists for: argparse refuses a value on a store_true flag.
    with pytest.raises(SystemExit):
        PipelineOptions(["--commit_offsets=true"]).view_as(PropertyOptions)


def test_dataflow_argv_adds_the_runner_and_dry_run_placeholders():
    argv = dataflow_argv(["--bootstrap_servers=b:9092", "--project=mine"], dry_run=True)
    assert argv == [
        "--bootstrap_servers=b:9092",
        "--project=mine",
        "--runner=DataflowRunner",
        f"--setup_file={REPO_ROOT / 'setup.py'}",
        "--dry_run=True",
        "--region=us-central1",
        "--temp_location=gs://dry-run-bucket/tmp",
    ]
    given = ["--runner=DataflowRunner", "--sdk_container_image=europe-docker.pkg.dev/p/r/i:1"]
    assert dataflow_argv(given, dry_run=False) == given


def test_dataflow_argv_refuses_another_runner():
    with pytest.raises(ValueError, match="--runner=FlinkRunner: this command builds Dataflow"):
        dataflow_argv(["--runner=FlinkRunner"], dry_run=True)


def test_expansion_service_runs_in_beams_default_environment():
    argv = expansion_service_argv("java", Path("/jars"), 8097)
    assert argv[-2:] == ["org.apache.beam.sdk.expansion.service.ExpansionService", "8097"]
    assert not any(arg.startswith("--defaultEnvironment") for arg in argv)


def test_expansion_service_without_jars_says_how_to_get_them(tmp_path):
    with (
        pytest.raises(ExpansionServiceError, match="holds no jars: run `make setup`"),
        expansion_service(tmp_path),
    ):
        pass


def _spec(*env_urns: str, staged: tuple[str, ...] = ("workflow.tar.gz",)) -> JobSpec:
    step = KafkaStep(
        name="ReadEvents/ReadFromKafka/KafkaIO.Read",
        topics=("t",),
        bootstrap_servers="b:9092",
        dofn_transform="leaf",
        transform_urn="beam:transform:pardo:v1",
        dofn_urn="beam:dofn:javasdk:0.1",
        dofn_class=KAFKA_READ_DOFN,
        splittable=True,
        environment_id="e0",
    )
    environments = {
        f"e{i}": EnvironmentSpec(f"e{i}", urn, None, staged) for i, urn in enumerate(env_urns)
    }
    return JobSpec(
        name="job",
        job_type="JOB_TYPE_STREAMING",
        environments=environments,
        kafka_reads=(step,),
        kafka_writes=(step,),
        python_package=(),
        requirements=(),
    )


def test_a_job_with_an_external_environment_is_a_problem_for_dataflow():
    # What the dry run gives when --beam_services names the local stack's EXTERNAL service.
    problems = _spec("beam:env:external:v1", "beam:env:docker:v1").problems()
    assert len(problems) == 1
    assert problems[0].startswith("environment e0 is beam:env:external:v1: Dataflow runs Docker")
    assert _spec("beam:env:docker:v1", "beam:env:docker:v1").problems() == []


def test_a_job_without_the_pipeline_package_is_a_problem_for_dataflow():
    problems = _spec("beam:env:docker:v1", staged=("pickled_main_session",)).problems()
    assert len(problems) == 1
    assert problems[0].startswith("no --setup_file package is staged")
