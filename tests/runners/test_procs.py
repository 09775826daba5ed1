"""A recorded process is recognised by its start time, whatever the wall clock does meanwhile."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import psutil
import pytest

from runners import _procs


@pytest.fixture
def sleeper(tmp_path) -> Iterator[_procs.Spawned]:
    """A process of our own, spawned the way the stack spawns its services."""
    spawned = _procs.spawn(
        [sys.executable, "-c", "import time; time.sleep(120)"], log_path=tmp_path / "sleeper.log"
    )
    try:
        yield spawned
    finally:
        _procs.stop(spawned.pid, spawned.create_time, timeout_s=5)


def test_a_recorded_process_is_alive_and_a_different_start_time_is_another_process(sleeper):
    assert _procs.is_alive(sleeper.pid, sleeper.create_time)
    assert _procs.is_alive(sleeper.pid)
    assert not _procs.is_alive(sleeper.pid, sleeper.create_time - 5)
    assert not _procs.is_alive(sleeper.pid, sleeper.create_time + 5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat's btime is Linux's")
@pytest.mark.parametrize("shift_s", [1.0, -1.0, 3600.0])
def test_a_wall_clock_adjustment_does_not_make_a_running_service_look_dead(
    sleeper, monkeypatch, shift_s
):
    """NTP slewing or stepping the clock moves /proc/stat's btime (whole seconds, computed from
    the wall clock), and psutil's create time with it. A CI run on a fresh machine failed 20
    tests and errored 26 once every recorded service (the broker first) looked dead at once."""
    epoch_before = psutil.Process(sleeper.pid).create_time()
    boot_time = psutil._pslinux.boot_time
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: boot_time() + shift_s)
    # psutil's view of the same process moved with the clock ...
    assert psutil.Process(sleeper.pid).create_time() == pytest.approx(epoch_before + shift_s)
    # ... the stack's does not.
    assert _procs.is_alive(sleeper.pid, sleeper.create_time)
    assert _procs.stop(sleeper.pid, sleeper.create_time, timeout_s=5) == "stopped"


def test_a_stopped_process_is_dead_and_stopping_it_again_is_a_no_op(sleeper):
    assert _procs.stop(sleeper.pid, sleeper.create_time, timeout_s=5) == "stopped"
    assert not _procs.is_alive(sleeper.pid, sleeper.create_time)
    assert _procs.stop(sleeper.pid, sleeper.create_time, timeout_s=5) == "not running"


def test_a_state_file_of_an_earlier_version_still_names_its_process(sleeper):
    """Earlier versions recorded psutil's epoch create time: such a stack stays manageable."""
    epoch = psutil.Process(sleeper.pid).create_time()
    assert _procs.is_alive(sleeper.pid, epoch)
    assert not _procs.is_alive(sleeper.pid, epoch - 5)


def test_start_time_of_a_pid_that_does_not_run_raises_no_such_process():
    with pytest.raises(psutil.NoSuchProcess):
        _procs.start_time(2**22 + 12345)  # above Linux's pid_max
