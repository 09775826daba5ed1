"""``--profile``: the launcher's choice between the throughput presets (default) and the latency
preset (a streaming Flink run gets ``--parallelism`` = the partitions it reads, counted on the
real broker), applied to argv before the options are parsed."""

from __future__ import annotations

import json
import logging

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import passthrough
from pipelines import property as property_pipeline
from pipelines.launch import take_profile
from pipelines.options import OptionError
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
        ]
    )
    assert _parallelism(options) == 3


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
            ]
        )
