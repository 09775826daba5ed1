"""The Flink event-time guard: which runs are refused, with which message, and the preset flags."""

from __future__ import annotations

import pytest

from runners.flink_event_time import (
    DEFAULT_CHECKPOINTING_INTERVAL_MS,
    VERIFIED_RUNNER_VERSION,
    check_flink_streaming_event_time,
    flink_streaming_event_time_args,
    parse_version,
)

READY = {"checkpointing_interval_ms": 1000, "finish_bundle_before_checkpointing": True}


def test_streaming_event_time_with_checkpointing_and_finish_before_checkpoint_is_accepted():
    assert check_flink_streaming_event_time("2.62.0", True, True, **READY) is None


def test_a_newer_runner_with_the_same_options_is_accepted():
    assert check_flink_streaming_event_time("2.76.0", True, True, **READY) is None


@pytest.mark.parametrize(("streaming", "uses_event_time"), [(False, True), (True, False)])
def test_batch_runs_and_runs_without_event_time_are_not_checked(streaming, uses_event_time):
    assert check_flink_streaming_event_time("2.62.0", streaming, uses_event_time) is None


@pytest.mark.parametrize("interval", [None, 0, -1])
def test_streaming_event_time_without_checkpointing_is_refused_naming_the_flags(interval):
    with pytest.raises(ValueError) as err:
        check_flink_streaming_event_time(
            "2.62.0",
            True,
            True,
            checkpointing_interval_ms=interval,
            finish_bundle_before_checkpointing=True,
        )
    message = str(err.value)
    assert "checkpointing is on" in message
    assert f"--checkpointing_interval={DEFAULT_CHECKPOINTING_INTERVAL_MS}" in message
    assert "PrismRunner" in message


def test_streaming_event_time_without_finish_bundle_before_checkpointing_is_refused():
    with pytest.raises(ValueError) as err:
        check_flink_streaming_event_time("2.62.0", True, True, checkpointing_interval_ms=5000)
    message = str(err.value)
    assert "watermark overtake" in message
    assert "--finish_bundle_before_checkpointing" in message


def test_the_refusal_names_every_alternative():
    with pytest.raises(ValueError) as err:
        check_flink_streaming_event_time("2.62.0", True, True)
    message = str(err.value)
    assert "PrismRunner for local streaming" in message
    assert "without --streaming for bounded backfills" in message
    assert "apache/beam#19637" in message


def test_a_runner_older_than_the_verified_one_is_refused_even_with_the_options():
    with pytest.raises(ValueError, match=f"{VERIFIED_RUNNER_VERSION} is the oldest known"):
        check_flink_streaming_event_time("2.61.0", True, True, **READY)


@pytest.mark.parametrize("version", ["", "2.62", "two", None])
def test_a_malformed_runner_version_is_rejected_whatever_the_mode(version):
    with pytest.raises(ValueError, match="runner_version must look like"):
        check_flink_streaming_event_time(version, False, False)


def test_versions_parse_with_suffixes():
    assert parse_version("2.62.0") == (2, 62, 0)
    assert parse_version("2.73.0.dev") == (2, 73, 0)
    assert parse_version("2.70.0-SNAPSHOT") == (2, 70, 0)


def test_preset_flags_enable_checkpointing_and_finish_bundles_before_checkpoints():
    assert flink_streaming_event_time_args() == [
        f"--checkpointing_interval={DEFAULT_CHECKPOINTING_INTERVAL_MS}",
        "--finish_bundle_before_checkpointing",
    ]
    assert flink_streaming_event_time_args(250)[0] == "--checkpointing_interval=250"


@pytest.mark.parametrize("interval", [0, -5, 1.5, True, "1000"])
def test_preset_flags_reject_an_interval_that_is_not_positive_milliseconds(interval):
    with pytest.raises(ValueError, match="checkpointing_interval_ms must be"):
        flink_streaming_event_time_args(interval)
