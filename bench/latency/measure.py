"""One system's latency run: topics, start, warm-up, live log, quiet outputs, stop, read back,
check against the oracle, statistics per path."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from bench.kafka_io import create_topics
from bench.latency.causes import counted_records, find_causes, path_latencies
from bench.latency.config import (
    INPUT_PRODUCER,
    LATENCY_PRODUCER,
    NO_WINDOW_FIRING,
    PATHS,
    QUIET_S,
    SPEEDUP,
    WARMUP_TIMEOUT_S,
)
from bench.latency.outputs import (
    delete_topics,
    read_all_timed,
    wait_for_count,
    wait_quiet,
)
from bench.latency.plan import live_origin_ms, log_end_offsets, warmup_records
from bench.latency.producer import produce_live
from bench.latency.stats import cdf, latency_stats, trend
from bench.latency.systems import BeamRunning, LatencyRun, QuixRunning, RawRunning, Running
from bench.meter import ProcessMeter
from bench.workload import (
    OUTPUT_FIELDS,
    PARTITIONS,
    RUNNERS,
    scaled_spec,
    system_topics,
    topic_flags,
)
from schemas.contract import EVENTS_TOPIC, VIEWS_TOPIC
from tools.simulate import (
    HOUR_MS,
    Simulation,
    compress_time,
    compute_oracle,
    generate,
    produce,
)
from tools.simulate import scaled_spec as time_scaled_spec
from tools.verify import differences, summarize


def measure(
    system: str,
    records: int,
    rate: float,
    max_eps: float,
    stack,
    pids: dict[str, int],
    seed: int,
    extra: Sequence[str],
    quix_python: Path | None,
    partitions: int = PARTITIONS,
    replication: int = -1,
) -> LatencyRun:
    """One system's run: fresh topics (inputs of ``partitions`` partitions, every one written;
    ``replication`` -1: the broker's default), start, warm up, the live log at ``rate``, stop,
    verify."""
    from bench.raw_loop import TopologyRules

    bootstrap = stack.bootstrap_servers
    tag = time.strftime("%H%M%S") + uuid.uuid4().hex[:4]
    inputs = (f"lat-{tag}-events", f"lat-{tag}-views")
    topics = system_topics(system, tag, inputs)
    outputs = [getattr(topics, f) for f in OUTPUT_FIELDS.values()]
    create_topics(bootstrap, inputs, partitions=partitions, replication=replication)
    create_topics(bootstrap, outputs, append_time=True, replication=replication)

    now_ms = int(time.time() * 1000)
    spec = scaled_spec(records, seed=seed, end_ms=now_ms // HOUR_MS * HOUR_MS)
    spec = dataclasses.replace(spec, partitions=partitions)
    # More bots than the throughput run: each alert is one latency sample of the stateful path.
    spec = dataclasses.replace(spec, bots=max(spec.bots, records // 1_000))
    sim = generate(spec, now_ms=now_ms)
    live = time_scaled_spec(spec, SPEEDUP)
    span_s = spec.span_h * 3600 / SPEEDUP
    window_ms = live.hourly_window_s * 1000
    rules = TopologyRules(
        window_size_s=live.gate_window_s,
        allowed_lateness_s=live.allowed_lateness_s,
        fraud_threshold=live.fraud_threshold,
        fraud_window_s=live.fraud_window_s,
        high_value_threshold=live.high_value_threshold,
    )
    flags = [
        f"--window_size_s={live.hourly_window_s}",
        f"--allowed_lateness_s={live.allowed_lateness_s}",
        f"--fraud_window_s={live.fraud_window_s}",
        *extra,
    ]
    # Warm-up records first, compressed to just before now (sent at once); the live log after.
    warm_sim = Simulation(warmup_records(sim.records, spec), sim.oracle)
    warm = compress_time(warm_sim, spec, SPEEDUP, live_origin_ms(now_ms, window_ms) - 2 * window_ms)
    warm_records = warm.records
    warm_events = sum(1 for r in warm_records if r.topic == EVENTS_TOPIC)
    names = {EVENTS_TOPIC: inputs[0], VIEWS_TOPIC: inputs[1]}
    print(
        f"{system}: {len(sim.records)} records in {span_s:.0f} s of live input "
        f"(~{len(sim.records) / span_s:.0f}/s, {len(sim.records) / span_s / max_eps:.0%} of "
        f"{max_eps:.0f}/s) after {len(warm_records)} warm-up records",
        flush=True,
    )

    started = time.monotonic()
    if system == "raw":
        stops = log_end_offsets([*warm_records, *sim.records], names)
        running: Running | None = RawRunning(bootstrap, topics, stops, rules)
    elif system == "quix":
        stops = log_end_offsets([*warm_records, *sim.records], names)
        running = QuixRunning(quix_python, bootstrap, topics, stops, rules)
    elif system == "kstreams":
        from bench.kstreams_bench import LatencyRunning

        stops = log_end_offsets([*warm_records, *sim.records], names)
        running = LatencyRunning(bootstrap, topics, stops, rules, LATENCY_PRODUCER)
    else:
        argv = [f"--runner={RUNNERS[system]}", *topic_flags(topics), *flags]
        running = BeamRunning(system, argv, stack)
    try:
        produce(
            warm_records, bootstrap, topics=names, producer_config=INPUT_PRODUCER, progress=False
        )
        wait_for_count(bootstrap, topics.enriched, warm_events, WARMUP_TIMEOUT_S)
        warmup_s = time.monotonic() - started
        effective = running.effective_options() if isinstance(running, BeamRunning) else {}
        origin_ms = live_origin_ms(time.time() * 1000, window_ms)
        main = compress_time(sim, spec, SPEEDUP, origin_ms).records
        log = [*warm_records, *main]
        oracle = compute_oracle(log, live)
        print(f"{system}: warm after {warmup_s:.1f} s; live log from {origin_ms}", flush=True)
        roots = {"python": os.getpid(), **pids}
        with ProcessMeter(roots) as meter:
            sent = produce_live(main, bootstrap, names, span_s)
            achieved = len(main) / max(1e-3, (sent[-1] - sent[0]) / 1000)
            if system in RUNNERS:
                wait_quiet(bootstrap, outputs, QUIET_S, timeout_s=900)
            ending, running = running, None
            note = ending.stop()
    finally:
        if running is not None:
            running.stop()
    timed = read_all_timed(bootstrap, topics)
    delete_topics(bootstrap, [*inputs, *outputs])
    summary = summarize({name: [v for _, v in rows] for name, rows in timed.items()})
    diffs = differences(summary, oracle)
    # The warm-up records' send times do not matter: they are excluded from the statistics.
    all_sent = [sent[0]] * len(warm_records) + sent
    causes = find_causes(
        log, all_sent, counted_records(log, live), live.fraud_threshold, live.fraud_window_s * 1000
    )
    paths, curves, unmatched = {}, {}, {}
    for path in PATHS:
        if path == "views_hourly" and system in NO_WINDOW_FIRING:
            paths[path], curves[path], unmatched[path] = {"count": 0}, [], 0
            note += f"; views_hourly not measured: {NO_WINDOW_FIRING[system]}"
            continue
        samples, missing = path_latencies(
            path, timed[path], causes, len(warm_records), window_ms, window_from_ms=origin_ms
        )
        values = [latency for _, latency in samples]
        paths[path] = {**latency_stats(values), "trend_p50": trend(samples)}
        curves[path] = cdf(values)
        unmatched[path] = missing
    cpu = meter.cpu_by_process()
    return LatencyRun(
        system=system,
        records=len(main),
        rate_eps=round(len(main) / span_s),
        max_eps=round(max_eps),
        achieved_eps=round(achieved),
        paths=paths,
        cdf=curves,
        unmatched=unmatched,
        correct=not diffs,
        differences=diffs,
        outputs=summary.records,
        warmup_s=round(warmup_s, 1),
        cpu_s_per_million=round(sum(cpu.values()) * 1e6 / len(main), 1),
        cpu_by_process=cpu,
        flags=flags,
        effective=effective,
        note=note,
    )
