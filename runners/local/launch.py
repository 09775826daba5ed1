"""Launching services: the stack lock, pid files, spawning a plan's processes, awaiting readiness
(bounded, stopping what died), and starting independent services in parallel waves."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from runners import _procs
from runners._state import ProcessRecord, ServiceRecord, save_state
from runners.local.beam_services import plan_expansion_service, plan_java_workers
from runners.local.flink_services import (
    plan_flink_cluster,
    plan_flink_expansion_service,
    plan_flink_job_server,
    plan_python_workers,
)
from runners.local.kafka_service import plan_kafka
from runners.local.marketdata_service import plan_marketdata
from runners.local.options import UpOptions, choose_ports
from runners.local.plan import Plan, Proc
from runners.local.prometheus_service import plan_prometheus
from runners.local.redis_service import plan_redis
from runners.local.schemaregistry_service import plan_schema_registry
from runners.local.services import (
    DEPENDS_ON,
    EXPANSION_SERVICE,
    FLINK_CLUSTER,
    FLINK_EXPANSION_SERVICE,
    FLINK_JOB_SERVER,
    JAVA_WORKERS,
    KAFKA,
    LOCK_TIMEOUT_S,
    MARKETDATA,
    PROMETHEUS,
    PYTHON_WORKERS,
    REDIS,
    SCHEMA_REGISTRY,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
)
from runners.local.stack import StackError, StackPaths


def stop_record(rec: ServiceRecord, paths: StackPaths) -> dict[int, str]:
    outcome = _procs.stop_groups(
        [(p.pid, p.create_time) for p in rec.processes], timeout_s=STOP_TIMEOUT_S
    )
    for proc in rec.processes:
        pid_file(paths, rec.name, proc.role).unlink(missing_ok=True)
    return outcome


def pid_file(paths: StackPaths, service: str, role: str) -> Path:
    return paths.run / (f"{service}.pid" if role == "main" else f"{service}-{role}.pid")


@contextlib.contextmanager
def locked(paths: StackPaths, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Serialise ``up``/``down`` across processes (several test sessions may share the stack)."""
    paths.lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file, "a+") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise StackError(
                        f"timed out after {timeout_s:.0f}s waiting for the stack lock"
                        f" {paths.lock_file} (another `runners.local up/down` is running)"
                    ) from exc
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Launched:
    """A service whose processes were spawned and that is not yet known to be ready."""

    name: str
    plan: Plan
    ports: Mapping[str, int]
    spawned: tuple[tuple[Proc, _procs.Spawned], ...]
    started: float


def plan_for(
    name: str,
    paths: StackPaths,
    ports: Mapping[str, int],
    options: UpOptions,
    state: Mapping[str, ServiceRecord],
) -> Plan:
    if name == KAFKA:
        return plan_kafka(paths, ports, options.brokers, options.secure)
    if name == JAVA_WORKERS:
        return plan_java_workers(paths, ports)
    if name == EXPANSION_SERVICE:
        return plan_expansion_service(paths, ports, state)
    if name == FLINK_JOB_SERVER:
        master = options.flink_master
        if master == "[local]" and FLINK_CLUSTER in state:
            # A session cluster runs: submit there rather than to an embedded Flink.
            master = f"localhost:{state[FLINK_CLUSTER].ports['rest']}"
        return plan_flink_job_server(paths, ports, master)
    if name == FLINK_EXPANSION_SERVICE:
        return plan_flink_expansion_service(paths, ports)
    if name == FLINK_CLUSTER:
        return plan_flink_cluster(paths, ports, options.taskmanagers, options.slots)
    if name == PYTHON_WORKERS:
        return plan_python_workers(paths, ports)
    if name == REDIS:
        return plan_redis(paths, ports)
    if name == MARKETDATA:
        return plan_marketdata(paths, ports)
    if name == SCHEMA_REGISTRY:
        return plan_schema_registry(paths, ports)
    if name == PROMETHEUS:
        return plan_prometheus(paths, ports, state)
    raise ValueError(name)  # pragma: no cover: resolve_services rejects unknown names


def abort(name: str, paths: StackPaths, spawned: Iterable[tuple[Proc, _procs.Spawned]]) -> None:
    spawned = list(spawned)
    _procs.stop_groups([(sp.pid, sp.create_time) for _, sp in spawned], timeout_s=5)
    for proc, _ in spawned:
        pid_file(paths, name, proc.role).unlink(missing_ok=True)


def launch(
    name: str,
    paths: StackPaths,
    options: UpOptions,
    state: Mapping[str, ServiceRecord],
    taken: set[int],
) -> Launched:
    """Choose ports (not in ``taken``, which grows), prepare and spawn a service's processes."""
    ports = choose_ports(name, options, taken)
    plan = plan_for(name, paths, ports, options, state)
    started = time.monotonic()
    spawned: list[tuple[Proc, _procs.Spawned]] = []
    try:
        for proc in plan.processes:
            spawned.append(
                (proc, _procs.spawn(proc.argv, log_path=proc.log, env=proc.env, cwd=proc.cwd))
            )
        paths.run.mkdir(parents=True, exist_ok=True)
        for proc, sp in spawned:
            pid_file(paths, name, proc.role).write_text(f"{sp.pid}\n")
    except BaseException:
        abort(name, paths, spawned)
        raise
    return Launched(name, plan, ports, tuple(spawned), started)


def await_ready(launched: Launched, paths: StackPaths, say: Callable[[str], None]) -> ServiceRecord:
    """Wait (bounded) until a launched service is healthy; stop it if it dies or times out."""
    name, plan = launched.name, launched.plan

    def alive() -> bool:
        return all(_procs.is_alive(sp.pid, sp.create_time) for _, sp in launched.spawned)

    try:
        _procs.wait_until(
            plan.ready,
            what=f"{name}: {plan.ready_what}",
            timeout_s=START_TIMEOUT_S[name],
            alive=alive,
            log_path=plan.processes[0].log,
        )
    except BaseException:
        abort(name, paths, launched.spawned)
        raise
    took = time.monotonic() - launched.started
    where = fmt_ports(launched.ports)
    say(f"{name}: ready in {took:.1f}s on {where} (log {plan.processes[0].log})")
    return ServiceRecord(
        name=name,
        processes=tuple(
            ProcessRecord(pid=sp.pid, create_time=sp.create_time, log=str(p.log), role=p.role)
            for p, sp in launched.spawned
        ),
        ports=dict(launched.ports),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        extra={**plan.extra, "start_seconds": round(took, 1)},
    )


def waits_for(name: str, pending: Iterable[str]) -> bool:
    """True when ``name`` must start after a service still in ``pending``."""
    pending = set(pending)
    if set(DEPENDS_ON.get(name, ())) & pending:
        return True
    # The job server submits to the session cluster when one is being started; Prometheus
    # scrapes its reporters.
    return name in (FLINK_JOB_SERVER, PROMETHEUS) and FLINK_CLUSTER in pending


def start_in_waves(
    names: Sequence[str],
    paths: StackPaths,
    options: UpOptions,
    state: dict[str, ServiceRecord],
    say: Callable[[str], None],
) -> None:
    """Start ``names``: every service whose dependencies run is launched at once and awaited in
    parallel (JVM start-ups overlap), wave after wave. Ready services are recorded even when
    another fails; the first failure is raised after the wave."""
    pending = list(names)
    while pending:
        wave = [n for n in pending if not waits_for(n, pending)]
        taken = {port for rec in state.values() for port in rec.ports.values()}
        launched: list[Launched] = []
        failure: BaseException | None = None
        for name in wave:
            try:
                launched.append(launch(name, paths, options, state, taken))
            except Exception as exc:  # reported after the others settle
                failure = failure or exc
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(launched))) as pool:
                futures = [(pool.submit(await_ready, ln, paths, say), ln) for ln in launched]
                for future, ln in futures:
                    try:
                        state[ln.name] = future.result()
                    except Exception as exc:  # reported after the others settle
                        failure = failure or exc
        except BaseException:
            for ln in launched:
                if ln.name not in state:
                    abort(ln.name, paths, ln.spawned)
            raise
        finally:
            save_state(paths.state_file, state)
        if failure is not None:
            raise failure
        pending = [n for n in pending if n not in wave]


def fmt_ports(ports: Mapping[str, int]) -> str:
    return ", ".join(f"{role} {port}" for role, port in ports.items())
