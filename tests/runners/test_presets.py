"""Runner presets: what each runner gets from the running stack, and what the user gave wins."""

from __future__ import annotations

import json
import logging
import re

import pytest

from runners.presets import (
    FLINK_BATCH_ARGS,
    PRISM_BINARY,
    PresetError,
    StackAddresses,
    check_runner_supports,
    runner_args,
)

STACK = StackAddresses(
    bootstrap_servers="127.0.0.1:9092",
    expansion_service="localhost:8097",
    job_endpoint="localhost:8099",
)
BEAM_SERVICES = "--beam_services=" + json.dumps(
    {"sdks:java:io:expansion-service:shadowJar": "localhost:8097"}
)


def test_prism_gets_binary_loopback_and_the_running_expansion_service():
    args = runner_args(["--runner=PrismRunner", "--input_topic", "a"], STACK)
    assert args == [
        "--runner=PrismRunner",
        "--input_topic",
        "a",
        "--bootstrap_servers=127.0.0.1:9092",
        "--environment_type=LOOPBACK",
        "--experiments=disable_logging_submission_environment",
        BEAM_SERVICES,
        "--kafka_poll_timeout_s=1",
        f"--prism_location={PRISM_BINARY}",
        "--experiments=prism_disable_sdf_split",
        "--experiments=disable_prism_server_singleton",
    ]


@pytest.mark.parametrize("runner", ["PrismRunner", "FlinkRunner"])
def test_a_record_count_read_gets_no_poll_timeout(runner):
    """KafkaIO reads --max_records with its legacy implementation, which has no poll timeout:
    with both, the expansion fails ("no Kafka read implementation supports every property")."""
    args = runner_args([f"--runner={runner}", "--max_records=10"], STACK)
    assert not any(a.startswith("--kafka_poll_timeout_s") for a in args)
    assert "--kafka_poll_timeout_s=1" in runner_args([f"--runner={runner}"], STACK)


def test_direct_runner_with_kafka_moves_to_prism_and_says_so_once(caplog):
    with caplog.at_level(logging.INFO, logger="runners.presets"):
        args = runner_args(["--runner", "DirectRunner", "--streaming"], STACK)
    assert "--runner=PrismRunner" in args
    assert "DirectRunner" not in " ".join(args)
    assert [r.getMessage() for r in caplog.records] == [
        "DirectRunner cannot run Kafka IO (Java cross-language transforms): running on PrismRunner"
    ]


def test_no_runner_means_beams_default_direct_runner_and_so_prism_for_kafka():
    assert "--runner=PrismRunner" in runner_args([], STACK)


def test_direct_runner_without_kafka_stays_direct_and_needs_no_stack():
    def no_stack() -> StackAddresses:
        raise AssertionError("the stack must not be consulted")

    assert runner_args(["--runner=DirectRunner"], no_stack, uses_kafka=False) == [
        "--runner=DirectRunner"
    ]


def test_flink_streaming_gets_job_endpoint_loopback_services_and_checkpointing():
    args = runner_args(["--runner=FlinkRunner", "--streaming"], STACK)
    assert args == [
        "--runner=FlinkRunner",
        "--streaming",
        "--bootstrap_servers=127.0.0.1:9092",
        "--environment_type=LOOPBACK",
        "--experiments=disable_logging_submission_environment",
        BEAM_SERVICES,
        "--kafka_poll_timeout_s=1",
        "--job_endpoint=localhost:8099",
        "--checkpointing_interval=1000",
        "--finish_bundle_before_checkpointing",
        "--number_of_execution_retries=3",
        "--execution_retry_delay=10000",
    ]


def test_flink_batch_gets_no_checkpointing_and_no_restart_strategy():
    args = runner_args(["--runner=FlinkRunner"], STACK)
    assert not any(a.startswith("--checkpointing_interval") for a in args)
    assert not any(a.startswith("--number_of_execution_retries") for a in args)


def test_flink_batch_gets_pipelined_exchanges_and_cached_environments_unless_given():
    args = runner_args(["--runner=FlinkRunner"], STACK)
    assert args[-2:] == list(FLINK_BATCH_ARGS)
    assert "--execution_mode_for_batch=PIPELINED_FORCED" in args
    given = ["--runner=FlinkRunner", "--execution_mode_for_batch=PIPELINED"]
    args = runner_args(given, STACK)
    assert args.count("--execution_mode_for_batch=PIPELINED") == 1
    assert "--execution_mode_for_batch=PIPELINED_FORCED" not in args
    assert "--environment_cache_millis=10000" in args
    streaming = runner_args(["--runner=FlinkRunner", "--streaming"], STACK)
    assert not any(
        a.startswith(("--execution_mode_for_batch", "--environment_cache")) for a in streaming
    )


def test_only_the_stacks_own_workers_skip_the_submission_environment_list():
    """Beam's `pip freeze` list is for comparing the submitter's packages with the workers'; the
    presets leave it out only when they choose the environment (this virtualenv's workers)."""
    flag = "--experiments=disable_logging_submission_environment"
    for runner in ("PrismRunner", "FlinkRunner"):
        assert runner_args([f"--runner={runner}"], STACK).count(flag) == 1
        assert flag not in runner_args([f"--runner={runner}", "--environment_type=DOCKER"], STACK)
        assert runner_args([f"--runner={runner}", flag], STACK).count(flag) == 1
    assert flag not in runner_args(["--runner=DataflowRunner"], STACK)


def test_flags_the_user_gave_win_over_the_stack():
    given = [
        "--runner=FlinkRunner",
        "--streaming",
        "--bootstrap_servers=kafka.prod:9093",
        "--environment_type=DOCKER",
        '--beam_services={"x": "y:1"}',
        "--job_endpoint=flink.prod:8099",
        "--kafka_poll_timeout_s=2",
        "--checkpointing_interval=60000",
        "--finish_bundle_before_checkpointing",
        "--number_of_execution_retries=-1",
        "--execution_retry_delay=1000",
    ]
    assert runner_args(given, StackAddresses()) == given


def test_flink_without_a_running_job_server_names_the_command_that_starts_it():
    stack = StackAddresses(bootstrap_servers="127.0.0.1:9092", expansion_service="localhost:8097")
    with pytest.raises(PresetError, match=re.escape("python -m runners.local up flink-job-server")):
        runner_args(["--runner=FlinkRunner"], stack)


def test_kafka_pipeline_without_an_expansion_service_names_the_command_that_starts_it():
    with pytest.raises(PresetError, match=re.escape("python -m runners.local up")):
        runner_args(["--runner=FlinkRunner"], StackAddresses(job_endpoint="localhost:8099"))


def test_dataflow_is_passed_through_unchanged():
    argv = ["--runner=DataflowRunner", "--project=p"]
    assert runner_args(argv, STACK) == argv


def test_the_stack_is_loaded_only_when_an_address_is_needed():
    calls = []

    def stack() -> StackAddresses:
        calls.append(1)
        return STACK

    runner_args(
        [
            "--runner=FlinkRunner",
            "--bootstrap_servers=b:1",
            "--beam_services={}",
            "--job_endpoint=j:1",
        ],
        stack,
    )
    assert calls == []
    runner_args(["--runner=FlinkRunner"], stack)
    assert calls == [1]


def test_flink_streaming_without_finish_bundle_before_checkpointing_is_refused():
    argv = ["--runner=FlinkRunner", "--streaming", "--checkpointing_interval=1000"]
    with pytest.raises(ValueError, match="--finish_bundle_before_checkpointing"):
        check_runner_supports(argv)


def test_flink_streaming_preset_passes_its_own_check():
    check_runner_supports(runner_args(["--runner=FlinkRunner", "--streaming"], STACK))


def test_flink_batch_and_prism_streaming_need_no_flink_flags():
    check_runner_supports(["--runner=FlinkRunner"])
    check_runner_supports(["--runner=PrismRunner", "--streaming"])


NATIVE_STACK = StackAddresses(
    bootstrap_servers="127.0.0.1:9092",
    expansion_service="localhost:8097",
    job_endpoint="localhost:8099",
    flink_expansion_service="localhost:8096",
)


def test_the_native_read_gets_its_expansion_service_and_no_poll_timeout():
    args = runner_args(["--runner=FlinkRunner", "--streaming", "--kafka_read=native"], NATIVE_STACK)
    assert "--kafka_native_expansion_service=localhost:8096" in args
    assert not any(a.startswith("--kafka_poll_timeout_s") for a in args)
    assert not any(a.startswith("--max_bundle_time_mills") for a in args)
    given = ["--runner=FlinkRunner", "--kafka_read=native", "--kafka_native_expansion_service=h:1"]
    assert runner_args(given, NATIVE_STACK).count("--kafka_native_expansion_service=h:1") == 1
    assert not any(
        a.startswith("--kafka_native_expansion_service=localhost")
        for a in runner_args(given, NATIVE_STACK)
    )


def test_the_native_read_checkpoints_every_250_ms_and_a_given_interval_wins():
    native = ["--runner=FlinkRunner", "--streaming", "--kafka_read=native"]
    args = runner_args(native, NATIVE_STACK)
    assert "--checkpointing_interval=250" in args
    assert "--finish_bundle_before_checkpointing" in args
    check_runner_supports(args)
    given = runner_args([*native, "--checkpointing_interval=1000"], NATIVE_STACK)
    assert [a for a in given if a.startswith("--checkpointing_interval")] == [
        "--checkpointing_interval=1000"
    ]
    sdf = runner_args(["--runner=FlinkRunner", "--streaming", "--kafka_read=sdf"], NATIVE_STACK)
    assert "--checkpointing_interval=1000" in sdf


def test_the_native_read_without_its_expansion_service_names_the_command_that_starts_it():
    with pytest.raises(
        PresetError, match=re.escape("python -m runners.local up flink-expansion-service")
    ):
        runner_args(["--runner=FlinkRunner", "--kafka_read=native"], STACK)


POOL_STACK = StackAddresses(
    bootstrap_servers="127.0.0.1:9092",
    expansion_service="localhost:8097",
    job_endpoint="localhost:8099",
    python_worker_pool="localhost:50000",
)


@pytest.mark.parametrize("runner", ["PrismRunner", "FlinkRunner"])
def test_split_workers_run_in_the_stacks_worker_pool_instead_of_loopback(runner):
    args = runner_args([f"--runner={runner}", "--split_python_workers"], POOL_STACK)
    assert "--environment_type=EXTERNAL" in args
    assert "--environment_config=localhost:50000" in args
    assert "--environment_type=LOOPBACK" not in args


def test_split_workers_without_a_running_pool_names_the_command_that_starts_it():
    with pytest.raises(PresetError, match=re.escape("python -m runners.local up python-workers")):
        runner_args(["--runner=PrismRunner", "--split_python_workers"], STACK)


def test_split_workers_with_a_given_environment_keep_it():
    given = [
        "--runner=PrismRunner",
        "--split_python_workers",
        "--environment_type=PROCESS",
        '--environment_config={"command": "boot"}',
    ]
    args = runner_args(given, STACK)
    assert [a for a in args if a.startswith("--environment_")] == given[2:]
