"""``--profile``: the launcher's choice between the throughput presets (default) and the latency
preset (a streaming Flink run reads Kafka with the native Flink source when its expansion service
is there, else gets ``--parallelism`` = the partitions it reads, counted on the real broker),
applied to argv before the options are parsed."""

from __future__ import annotations

import json
import logging

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import passthrough
from pipelines import property as property_pipeline
from pipelines.launch import new_pipeline, profile_read_args, take_profile
from pipelines.options import OptionError
from runners.presets import StackAddresses
from runners.prism import PrismRunner as ListeningPrismRunner
from transforms.io.kafka import EXPANSION_SERVICE_KEY

# Every address a runner preset would otherwise ask the local stack for; nothing is submitted.
FLINK = [
    "--runner=FlinkRunner",
    "--job_endpoint=127.0.0.1:1",
    "--beam_services=" + json.dumps({EXPANSION_SERVICE_KEY: "127.0.0.1:1"}),
    "--marketdata_url=http://127.0.0.1:1",
    "--redis_url=redis://127.0.0.1:1",
]


def _parallelism(options: PipelineOptions) -> int:
    return options.get_all_options()["parallelism"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--profile=fast"],
            r"--profile='fast' is not a profile: choose one of throughput, latency",
        ),
        (["--profile", "LATENCY"], r"--profile='LATENCY' is not a profile"),
        (["--profile"], r"--profile needs a value: one of throughput, latency"),
        (["--profile", "--streaming"], r"--profile needs a value"),
    ],
)
def test_a_bad_profile_fails_before_anything_else_naming_the_flag_and_the_choices(argv, message):
    with pytest.raises(OptionError, match=message):
        take_profile(argv)
    # Through the entry point's construction path: refused before the presets or Kafka are asked.
    with pytest.raises(OptionError, match=message):
        property_pipeline.pipeline_options([*FLINK, "--bootstrap_servers=127.0.0.1:1", *argv])


def test_the_profile_is_taken_out_of_argv_and_the_last_one_wins():
    assert take_profile(["--a=1", "--profile", "latency", "--b"]) == ("latency", ["--a=1", "--b"])
    assert take_profile(["--profile=latency", "--profile=throughput"]) == ("throughput", [])
    assert take_profile(["--profile_cpu"]) == ("throughput", ["--profile_cpu"])  # Beam's flag


@pytest.mark.integration
def test_latency_on_streaming_flink_sets_parallelism_to_the_partitions_read(
    make_topic, kafka_bootstrap, caplog
):
    events, views = make_topic(partitions=3), make_topic(partitions=2)
    argv = [
        *FLINK,
        f"--bootstrap_servers={kafka_bootstrap}",
        f"--events_topic={events}",
        f"--views_topic={views}",
        # The SDF read: with the native one (when its service runs) the profile sets no
        # parallelism (test_latency_reads_with_the_native_flink_source_when_its_service_is_there).
        "--kafka_read=sdf",
    ]
    with caplog.at_level(logging.INFO, logger="pipelines.launch"):
        options, _ = property_pipeline.pipeline_options([*argv, "--profile=latency"])
    assert options.get_all_options()["streaming"]
    assert _parallelism(options) == 5
    assert any("--parallelism=5" in r.getMessage() for r in caplog.records)

    # The default and --profile=throughput: today's presets, no --parallelism.
    for extra in ([], ["--profile=throughput"]):
        options, _ = property_pipeline.pipeline_options([*argv, *extra])
        assert _parallelism(options) == -1  # Beam's default: the runner decides
    # A --parallelism the user gives wins.
    options, _ = property_pipeline.pipeline_options(
        [*argv, "--profile", "latency", "--parallelism=2"]
    )
    assert _parallelism(options) == 2
    # The passthrough goes the same way, counting its one input.
    options, _ = passthrough.pipeline_options(
        [
            *FLINK,
            f"--bootstrap_servers={kafka_bootstrap}",
            f"--input_topic={events}",
            "--output_topic=out",
            "--profile=latency",
            "--kafka_read=sdf",
        ]
    )
    assert _parallelism(options) == 3


STREAMING_FLINK = ["--runner=FlinkRunner", "--streaming"]


def _stack(flink_expansion_service=None):
    """A local stack stub that counts how often it was asked."""
    asked = []

    def stack() -> StackAddresses:
        asked.append(1)
        return StackAddresses(flink_expansion_service=flink_expansion_service)

    return stack, asked


def test_latency_reads_with_the_native_flink_source_when_its_service_is_there(caplog):
    stack, _ = _stack("127.0.0.1:9")
    with caplog.at_level(logging.INFO, logger="pipelines.launch"):
        argv = profile_read_args(STREAMING_FLINK, "latency", stack)
    assert argv == [*STREAMING_FLINK, "--kafka_read=native"]
    assert any("--kafka_read=native" in r.getMessage() for r in caplog.records)
    # A service given on the command line is enough: the stack is not asked.
    stack, asked = _stack()
    given = [*STREAMING_FLINK, "--kafka_native_expansion_service=127.0.0.1:9"]
    assert profile_read_args(given, "latency", stack) == [*given, "--kafka_read=native"]
    assert asked == []


def test_latency_without_the_native_reads_service_keeps_the_sdf_read_and_says_how(caplog):
    stack, asked = _stack(None)
    with caplog.at_level(logging.INFO, logger="pipelines.launch"):
        assert profile_read_args(STREAMING_FLINK, "latency", stack) == STREAMING_FLINK
    assert asked == [1]
    said = [r.getMessage() for r in caplog.records if r.name == "pipelines.launch"]
    assert len(said) == 1 and "runners.local up flink-expansion-service" in said[0]


@pytest.mark.parametrize(
    "argv",
    [
        [*STREAMING_FLINK, "--kafka_read=sdf"],  # the user's read wins
        [*STREAMING_FLINK, "--kafka_read", "native"],
        [*STREAMING_FLINK, "--parallelism=4"],  # the user's parallelism: the SDF read's way
        ["--runner=FlinkRunner"],  # a bounded run
        ["--runner=PrismRunner", "--streaming"],  # no native source on Prism
    ],
)
def test_latency_leaves_the_read_alone_where_the_user_or_the_runner_decides(argv):
    stack, asked = _stack("127.0.0.1:9")
    assert profile_read_args(argv, "latency", stack) == argv
    assert profile_read_args(argv, "throughput", stack) == argv
    assert asked == []


def test_latency_with_the_native_read_completes_its_preset_without_parallelism():
    options, config = property_pipeline.pipeline_options(
        [
            *FLINK,
            "--bootstrap_servers=127.0.0.1:1",
            "--kafka_native_expansion_service=127.0.0.1:9",
            "--profile=latency",
        ]
    )
    everything = options.get_all_options(retain_unknown_options=True)
    assert everything["kafka_read"] == "native"
    assert str(everything["checkpointing_interval"]) == "250"  # the native read's preset
    assert _parallelism(options) == -1  # records flow as they arrive: no subtask per partition
    assert config.kafka.native_expansion_service == "127.0.0.1:9"
    # The default profile keeps the SDF read and its 1 s checkpoints.
    options, config = property_pipeline.pipeline_options(
        [*FLINK, "--bootstrap_servers=127.0.0.1:1"]
    )
    everything = options.get_all_options(retain_unknown_options=True)
    assert everything["kafka_read"] == "sdf"
    assert str(everything["checkpointing_interval"]) == "1000"
    assert config.kafka.native_expansion_service is None


@pytest.mark.integration
def test_latency_changes_nothing_on_prism_or_a_bounded_run_and_says_so(
    make_topic, kafka_bootstrap, caplog
):
    topic = make_topic(partitions=2)
    common = [
        f"--bootstrap_servers={kafka_bootstrap}",
        f"--input_topic={topic}",
        "--output_topic=out",
        "--profile=latency",
    ]
    runs = {
        "PrismRunner": [*FLINK[2:], "--runner=PrismRunner", *common],
        "a bounded run": [*FLINK, *common, "--max_read_time_s=5"],
    }
    for where, argv in runs.items():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pipelines.launch"):
            options, _ = passthrough.pipeline_options(argv)
        assert _parallelism(options) == -1  # Beam's default: the runner decides, where
        said = [r.getMessage() for r in caplog.records if r.name == "pipelines.launch"]
        assert len(said) == 1 and "--profile=latency changes nothing on" in said[0], (where, said)


@pytest.mark.integration
def test_latency_on_a_missing_topic_fails_naming_the_topic_and_the_way_out(
    make_topic, kafka_bootstrap
):
    missing = f"{make_topic(partitions=1)}-missing"
    with pytest.raises(OptionError, match=rf"topic '{missing}' has no partitions.*--parallelism"):
        passthrough.pipeline_options(
            [
                *FLINK,
                f"--bootstrap_servers={kafka_bootstrap}",
                f"--input_topic={missing}",
                "--output_topic=out",
                "--profile=latency",
                "--kafka_read=sdf",  # the read the profile counts partitions for
            ]
        )


def test_a_prism_run_gets_the_runner_that_connects_once_prism_listens():
    """Beam's PrismRunner otherwise waits out gRPC's reconnect backoff at every start
    (tests/runners/test_prism.py); another runner, or Prism behind a given job endpoint, keeps
    Beam's runner of that name."""
    prism = new_pipeline(PipelineOptions(["--runner=PrismRunner"]))
    assert type(prism.runner) is ListeningPrismRunner
    given = new_pipeline(PipelineOptions(["--runner=PrismRunner", "--job_endpoint=localhost:1"]))
    assert type(given.runner) is not ListeningPrismRunner
    assert type(given.runner).__name__ == "PrismRunner"
    flink = new_pipeline(PipelineOptions(FLINK))
    assert type(flink.runner).__name__ == "FlinkRunner"
