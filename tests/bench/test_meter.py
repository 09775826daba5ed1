"""``bench.meter.ProcessMeter`` against real processes it did not start: puppet Python processes
that burn CPU, spawn children and exit when told, and report their own CPU time
(``time.process_time``, the kernel's per-process clock) for the meter's figures to be checked
against."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bench.meter import ProcessMeter

# Reads commands on stdin, one a line, answers each on stdout:
#   burn S      burn S CPU seconds, answer the process's total CPU seconds
#   cpu         answer the process's total CPU seconds
#   spawn       start a child puppet, answer its pid
#   child CMD   send CMD to the child, answer its answer ("exit": wait for it, answer "gone")
# and ends at "exit" or at the end of its input.
PUPPET = r"""
import subprocess, sys, time
child = None
for line in sys.stdin:
    cmd, *arg = line.split()
    if cmd == "exit":
        break
    if cmd == "burn":
        end = time.process_time() + float(arg[0])
        while time.process_time() < end:
            pass
        answer = time.process_time()
    elif cmd == "cpu":
        answer = time.process_time()
    elif cmd == "spawn":
        child = subprocess.Popen(
            [sys.executable, "-c", sys.argv[1], sys.argv[1]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        answer = child.pid
    elif cmd == "child":
        child.stdin.write(" ".join(arg) + "\n")
        child.stdin.flush()
        if arg[0] == "exit":
            child.wait(timeout=60)
            answer = "gone"
        else:
            answer = child.stdout.readline().strip()
    print(answer, flush=True)
"""
# /proc counts CPU in clock ticks (10 ms); a process's own clock is exact. What a puppet uses
# between its answer and the meter's next sample (reading a line, exiting) is a few ms.
TOLERANCE_S = 0.06
EVERY_S = 0.05
WAIT_BOUND_S = 60.0


class Puppet:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PUPPET, PUPPET],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer, f"puppet {self.pid} ended while answering {command!r}"
        return answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def puppets() -> Iterator[list[Puppet]]:
    started: list[Puppet] = []
    yield started
    for puppet in started:  # a puppet's own child ends at its parent's kill (stdin closes)
        puppet.stop()


def start(puppets: list[Puppet]) -> Puppet:
    puppet = Puppet()
    puppets.append(puppet)
    puppet.ask("cpu")  # started and answering
    return puppet


def settle(meter: ProcessMeter, samples: int = 2) -> None:
    """Lets the meter take ``samples`` more samples (so it has seen what happened until now)."""
    target = meter.samples + samples
    deadline = time.monotonic() + WAIT_BOUND_S
    while meter.samples < target:
        assert time.monotonic() < deadline, "the meter took no samples"
        time.sleep(EVERY_S / 5)


def test_a_child_started_during_the_run_counts_in_its_roots_tree_even_after_it_ended(puppets):
    root = start(puppets)
    with ProcessMeter({"root": root.pid}, every_s=EVERY_S) as meter:
        settle(meter)
        child_pid = int(root.ask("spawn"))
        child_cpu = float(root.ask("child burn 0.3"))
        settle(meter)
        assert root.ask("child exit") == "gone"
        settle(meter)
    cpu = meter.cpu_by_process()
    # The child exited before the meter stopped: the CPU of its last sample stays counted.
    child_name = next(name for name in cpu if name.startswith("root/"))
    assert cpu[child_name] == pytest.approx(child_cpu, abs=TOLERANCE_S), (child_pid, cpu)
    assert cpu[child_name] >= 0.3 - TOLERANCE_S


def test_only_the_cpu_used_after_the_start_counts(puppets):
    root = start(puppets)
    before = float(root.ask("burn 0.3"))  # before the meter: not counted
    with ProcessMeter({"root": root.pid}, every_s=EVERY_S) as meter:
        after = float(root.ask("burn 0.2"))
        settle(meter)
    assert meter.cpu_by_process()["root"] == pytest.approx(after - before, abs=TOLERANCE_S)


def test_trees_are_apart_nested_roots_count_once_and_other_processes_not_at_all(puppets):
    first, second, outsider = start(puppets), start(puppets), start(puppets)
    nested_pid = int(first.ask("spawn"))  # a child of `first`, metered as a root of its own
    first.ask("child cpu")
    roots = {"first": first.pid, "second": second.pid, "nested": nested_pid}
    with ProcessMeter(roots, every_s=EVERY_S) as meter:
        first.ask("burn 0.2")
        first.ask("child burn 0.3")
        second_before = float(second.ask("cpu"))
        second_used = float(second.ask("burn 0.25")) - second_before
        outsider.ask("burn 0.3")
        settle(meter)
    cpu = meter.cpu_by_process()
    assert set(cpu) == {"first", "second", "nested"}, cpu
    assert cpu["first"] == pytest.approx(0.2, abs=TOLERANCE_S)
    assert cpu["nested"] == pytest.approx(0.3, abs=TOLERANCE_S)
    assert cpu["second"] == pytest.approx(second_used, abs=TOLERANCE_S)
    assert meter.samples >= 3 and meter.self_cpu_s > 0
