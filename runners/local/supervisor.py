"""The supervisor's operations: ``up`` (reuse what runs, restart what died or went stale, start the
rest in waves, ensure topics and ACLs), ``down``, and the fault tests' ``kill_process`` and
``restart_process``; ``status_lines`` for the CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from runners import _procs, prometheus
from runners import kafka as kafka_admin
from runners import security as kafka_security
from runners._state import ProcessRecord, ServiceRecord, load_state, save_state
from runners.local.launch import fmt_ports, locked, pid_file, plan_for, start_in_waves, stop_record
from runners.local.options import UpOptions, resolve_services
from runners.local.services import (
    ALL_SERVICES,
    EXPANSION_SERVICE,
    FLINK_CLUSTER,
    JAVA_WORKERS,
    KAFKA,
    PROMETHEUS,
    SCHEMA_REGISTRY,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
)
from runners.local.stack import ServiceNotRunning, Stack, StackError, StackPaths, all_alive


def stale_reason(name: str, rec: ServiceRecord, state: Mapping[str, ServiceRecord]) -> str:
    """Why a running service must be restarted to match the others ('' when it need not)."""
    if name == EXPANSION_SERVICE and JAVA_WORKERS in state:
        wanted = f"EXTERNAL localhost:{state[JAVA_WORKERS].ports['grpc']}"
        if rec.extra.get("environment") != wanted:
            return f"it points at {rec.extra.get('environment')}, the worker pool is {wanted}"
    if name == PROMETHEUS:
        targets = prometheus.scrape_targets(state)
        if list(rec.extra.get("targets", [])) != targets:
            return f"it scrapes {rec.extra.get('targets')}, the Flink reporters are {targets}"
    return ""


def up(
    names: Iterable[str] | None = None,
    *,
    options: UpOptions | None = None,
    home: Path | str | None = None,
    flink: bool = False,
    say: Callable[[str], None] = print,
) -> Stack:
    """Start the requested services (default set when ``names`` is empty) and return the stack.

    Services already running are reused; a recorded service whose processes died is cleaned up
    and started again. Kafka topics from ``runners/topics.toml`` are ensured after Kafka is up.
    Independent services start in parallel. A service that dies or misses its start timeout
    raises ``StartupError`` with its log tail; the services that became ready keep running
    (``down`` stops them).
    """
    options = options or UpOptions()
    paths = StackPaths.resolve(home)
    wanted = resolve_services(names, flink=flink)
    with locked(paths):
        state = load_state(paths.state_file)
        to_start: list[str] = []
        for name in wanted:
            rec = state.get(name)
            if rec is not None and all_alive(rec) and stale_reason(name, rec, state):
                say(f"{name}: restarting ({stale_reason(name, rec, state)})")
                stop_record(rec, paths)
                del state[name]
                save_state(paths.state_file, state)
                rec = None
            if rec is not None and all_alive(rec):
                if name == KAFKA and int(rec.extra.get("brokers", 1)) != options.brokers:
                    raise StackError(
                        f"kafka runs with {rec.extra.get('brokers', 1)} broker(s),"
                        f" {options.brokers} requested: run"
                        " `python -m runners.local down kafka` first"
                    )
                if name == FLINK_CLUSTER and (
                    int(rec.extra.get("taskmanagers", 1)) != options.taskmanagers
                ):
                    raise StackError(
                        f"flink-cluster runs {rec.extra.get('taskmanagers', 1)} TaskManager(s),"
                        f" {options.taskmanagers} requested: run"
                        " `python -m runners.local down flink-cluster` first"
                    )
                if name == KAFKA and bool(rec.extra.get("secure", False)) != options.secure:
                    raise StackError(
                        f"kafka runs {'secured' if rec.extra.get('secure') else 'unsecured'},"
                        f" {'--secure' if options.secure else 'unsecured'} requested: run"
                        " `python -m runners.local down kafka` first"
                    )
                say(f"{name}: already running (pid {rec.pid}, {fmt_ports(rec.ports)})")
                continue
            if rec is not None:
                say(f"{name}: recorded but not running; cleaning up and restarting")
                stop_record(rec, paths)
                del state[name]
                save_state(paths.state_file, state)
            to_start.append(name)
        start_in_waves(to_start, paths, options, state, say)
        stack = Stack(paths, dict(state))
        admin_config = stack.kafka_client_config("admin") if KAFKA in wanted else {}
        if KAFKA in wanted and options.create_topics:
            actions = kafka_admin.ensure_topics(
                stack.bootstrap_servers, kafka_admin.load_topics(), client_config=admin_config
            )
            created = [t for t, a in actions.items() if a == "created"]
            say(f"topics: {len(actions)} ensured" + (f", created {created}" if created else ""))
        if KAFKA in wanted and stack.kafka_secure:
            bindings = kafka_security.acl_bindings(kafka_security.load_security())
            kafka_security.apply_acls(
                kafka_admin.admin_client(stack.bootstrap_servers, **admin_config), bindings
            )
            say(
                f"security: SASL_SSL SCRAM-SHA-512, {len(bindings)} ACLs ensured; client"
                f" properties files in {stack.record(KAFKA).extra['security_dir']}"
            )
    return stack


def ensure_up(
    services: Iterable[str] | None = None,
    *,
    brokers: int = 1,
    home: Path | str | None = None,
    port_overrides: Mapping[str, int] | None = None,
    create_topics: bool = True,
    secure: bool = False,
    proxied: bool = False,
    taskmanagers: int = 1,
    slots: int = 2,
    say: Callable[[str], None] = lambda _msg: None,
) -> Stack:
    """For pytest fixtures and scripts: ``up`` quietly, returning the ``Stack``."""
    return up(
        services,
        options=UpOptions(
            brokers=brokers,
            port_overrides=dict(port_overrides or {}),
            create_topics=create_topics,
            secure=secure,
            proxied=proxied,
            taskmanagers=taskmanagers,
            slots=slots,
        ),
        home=home,
        say=say,
    )


def down(
    names: Iterable[str] | None = None,
    *,
    home: Path | str | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Stop the named services (all recorded ones when empty), dependents first.

    Each process group gets SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``. Returns service →
    outcome.
    """
    paths = StackPaths.resolve(home)
    results: dict[str, str] = {}
    with locked(paths):
        state = load_state(paths.state_file)
        targets = set(names) if names else set(state)
        unknown = targets - set(ALL_SERVICES)
        if unknown:
            raise ValueError(
                f"unknown service(s) {sorted(unknown)}; choose from {list(ALL_SERVICES)}"
            )
        for name in reversed(ALL_SERVICES):
            if name not in targets:
                continue
            rec = state.get(name)
            if rec is None:
                results[name] = "not recorded"
                continue
            outcome = stop_record(rec, paths)
            results[name] = ", ".join(sorted(set(outcome.values())))
            say(f"{name}: {results[name]}")
            del state[name]
            save_state(paths.state_file, state)
    return results


def kill_process(
    service: str,
    sig: int,
    *,
    role: str = "main",
    home: Path | str | None = None,
    wait_s: float = STOP_TIMEOUT_S,
) -> ProcessRecord:
    """Send ``sig`` to one process (group) of a running service and wait, bounded by ``wait_s``,
    until it has exited. For fault tests: the service stays recorded, dead, so that
    ``restart_process`` starts it again on the same ports with the same data; ``down`` still
    cleans up. Raises ``ServiceNotRunning`` when that process does not run, ``StackError`` when
    it outlives ``wait_s`` (a SIGTERM not honoured: send SIGKILL)."""
    paths = StackPaths.resolve(home)
    with locked(paths):
        rec = Stack(paths, load_state(paths.state_file)).record(service)
    procs = [p for p in rec.processes if p.role == role]
    if not procs or not _procs.is_alive(procs[0].pid, procs[0].create_time):
        raise ServiceNotRunning(f"{service} ({role}) is not running")
    proc = procs[0]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    deadline = time.monotonic() + wait_s
    while _procs.is_alive(proc.pid, proc.create_time):
        if time.monotonic() >= deadline:
            raise StackError(
                f"{service} ({role}, pid {proc.pid}) still runs {wait_s:.0f}s after {sig}"
            )
        time.sleep(0.1)
    return proc


def restart_process(
    service: str,
    *,
    role: str = "main",
    home: Path | str | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> Stack:
    """Start one dead process of a recorded service again, exactly as ``up`` planned it: the
    recorded ports (clients reconnect to the same address) and the same data directory (a Kafka
    broker recovers its log); waits until the service is healthy (bounded by its start timeout).
    """
    paths = StackPaths.resolve(home)
    with locked(paths):
        state = load_state(paths.state_file)
        rec = Stack(paths, state).record(service)
        old = next((p for p in rec.processes if p.role == role), None)
        if old is None:
            raise StackError(f"{service} has no process {role!r}")
        if _procs.is_alive(old.pid, old.create_time):
            raise StackError(f"{service} ({role}, pid {old.pid}) still runs: kill it first")
        options = UpOptions(
            brokers=int(rec.extra.get("brokers", 1)),
            flink_master=str(rec.extra.get("flink_master", "[local]")),
            taskmanagers=int(rec.extra.get("taskmanagers", 1)),
            slots=int(rec.extra.get("slots", 2)),
        )
        plan = plan_for(service, paths, rec.ports, options, state)
        proc = next(p for p in plan.processes if p.role == role)
        started = time.monotonic()
        sp = _procs.spawn(proc.argv, log_path=proc.log, env=proc.env, cwd=proc.cwd)
        pid_file(paths, service, role).write_text(f"{sp.pid}\n")
        new = ProcessRecord(pid=sp.pid, create_time=sp.create_time, log=str(proc.log), role=role)
        state[service] = dataclasses.replace(
            rec, processes=tuple(new if p.role == role else p for p in rec.processes)
        )
        save_state(paths.state_file, state)
        _procs.wait_until(
            plan.ready,
            what=f"{service}: {plan.ready_what}",
            timeout_s=START_TIMEOUT_S[service],
            alive=lambda: _procs.is_alive(sp.pid, sp.create_time),
            log_path=proc.log,
        )
        say(f"{service} ({role}): restarted in {time.monotonic() - started:.1f}s")
        return Stack(paths, dict(state))


def ui_lines(stack: Stack) -> list[str]:
    """Where an operator looks: the Flink web UI, Prometheus (UI, alerts) and the schema
    registry, when they run."""
    lines = []
    if stack.is_running(FLINK_CLUSTER):
        lines.append(f"Flink web UI: {stack.flink_rest_url}")
    if stack.is_running(PROMETHEUS):
        url = stack.prometheus_url
        lines.append(f"Prometheus UI: {url} (alerts: {url}/alerts, rules: {url}/rules)")
    if stack.is_running(SCHEMA_REGISTRY):
        lines.append(f"Schema registry: {stack.schema_registry_url} (--schema_registry_url)")
    return lines


def operations_lines(stack: Stack) -> list[str]:
    """The UI addresses, and each Flink job's status, rates, dead letters and Kafka backlog as
    Prometheus has them (when it runs; one line saying why when it does not answer)."""
    lines = ui_lines(stack)
    if stack.is_running(PROMETHEUS):
        try:
            lines += prometheus.job_lines(stack.prometheus_url) or ["no Flink job in Prometheus"]
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            lines.append(f"Prometheus did not answer: {exc}")
    return lines


def status_lines(home: Path | str | None = None) -> list[str]:
    """One line per recorded service: alive or dead, pids, ports, since, log."""
    stack = Stack.load(home)
    if not stack.services:
        return [f"nothing recorded in {stack.paths.state_file}"]
    lines = []
    for name in ALL_SERVICES:
        rec = stack.services.get(name)
        if rec is None:
            continue
        dead = [p for p in rec.processes if not _procs.is_alive(p.pid, p.create_time)]
        pids = ",".join(str(p.pid) for p in rec.processes)
        state = "running" if not dead else f"DEAD (pid {','.join(str(p.pid) for p in dead)} gone)"
        lines.append(
            f"{name:<18} {state:<10} pid {pids:<16} {fmt_ports(rec.ports):<40}"
            f" since {rec.started_at}  log {rec.log}"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# CLI
