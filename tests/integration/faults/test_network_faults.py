"""Network faults between the pipeline and Kafka (Toxiproxy): slow, throttled, reset, cut off.

The job (Flink session cluster) reaches a broker of the test's own only through Toxiproxy: the
broker advertises the proxy's port on the listener the pipeline bootstraps from
(``runners.local.UpOptions.proxied``), so every reconnection of Kafka IO's clients goes through
the proxy too, while the simulator, the output sampling and the judge use the direct listener.
While the live log flows, in this order (seconds of the log, which lasts about 90 s):

- 1 s latency on every response for 30 s;
- the bandwidth throttled to a few KB/s each way for 10 s (below what the job reads and writes);
- every connection reset (TCP RST) for 3 s, reconnections included;
- a 20 s partition: the ``timeout`` toxic swallows every byte and keeps the connections open,
  so the clients see silence, not a refusal, until their request timeouts fire.

The job stalls and catches up: nothing lost, the outputs equal the oracle after de-duplication,
the job still runs; duplicates (a restart from a checkpoint, a retried write) are counted, and
the seconds from the partition's end to the next output record are reported.
"""

from __future__ import annotations

import time

from runners.toxiproxy import accepted_connections
from tests.integration.faults.harness import (
    FLINK_FAULT,
    RESUME_TIMEOUT_S,
    FaultReport,
    assert_survived,
    flink_live_run,
    make_topics,
    private_broker,
    toxiproxied,
)

pytestmark = list(FLINK_FAULT)

BOTH = ("downstream", "upstream")
#: (name, toxic type, attributes, streams, log second it starts, seconds it lasts)
FAULTS = (
    ("latency", "latency", {"latency": 1000, "jitter": 0}, ("downstream",), 10, 30),
    ("bandwidth", "bandwidth", {"rate": 4}, BOTH, 42, 10),
    ("reset", "reset_peer", {"timeout": 0}, BOTH, 54, 3),
    ("partition", "timeout", {"timeout": 0}, BOTH, 60, 20),
)


def test_network_faults_between_pipeline_and_broker_lose_nothing(
    tmp_path, expansion_service, flink_session_cluster, local_services, record_property
):
    started = time.monotonic()
    proxy_log = tmp_path / "toxiproxy.log"
    with (
        private_broker(tmp_path / "broker", proxied=True) as stack,
        toxiproxied(stack, proxy_log) as (proxy, proxies),
    ):
        bootstrap = stack.bootstrap_servers
        topics = make_topics(bootstrap, "network")
        ended: dict[str, tuple[float, int]] = {}  # fault → (monotonic end, output total then)
        grown: dict[str, int] = {}  # fault → output records written while it lasted
        with flink_live_run(
            flink_session_cluster,
            bootstrap,
            topics,
            expansion_service,
            local_services,
            pipeline_bootstrap=stack.proxied_bootstrap_servers,
        ) as run:
            failures_before = len(run.job.rest.failures(run.job.jid))
            for name, kind, attributes, streams, at_s, lasts_s in FAULTS:
                run.producer.wait_until_log_second(at_s)
                began = run.progress.latest()
                for proxy_name in proxies:
                    for stream in streams:
                        proxy.add_toxic(proxy_name, f"{name}-{stream}", kind, attributes, stream)
                run.producer.wait_until_log_second(at_s + lasts_s)
                for proxy_name in proxies:
                    for stream in streams:
                        proxy.remove_toxic(proxy_name, f"{name}-{stream}")
                ended[name] = (time.monotonic(), run.progress.latest())
                grown[name] = ended[name][1] - began
            verdict, final_state = run.finish()
            settled_s = time.monotonic() - ended["partition"][0]
            restarts = len(run.job.rest.failures(run.job.jid)) - failures_before
            partition_end, baseline = ended["partition"]
            resumed = run.progress.grown_since(partition_end, baseline, RESUME_TIMEOUT_S)
        connections = accepted_connections(proxy_log)
    FaultReport(
        "network_faults",
        "Flink session cluster",
        len(run.sim.records),
        verdict,
        [resumed],
        notes={
            "faults": [f"{name} {at}-{at + lasts} s" for name, _, _, _, at, lasts in FAULTS],
            "output_written_during": grown,
            "proxied_connections": connections,
            "caught_up_after_partition_s": round(settled_s, 1),
            "restarts": restarts,
            "job_state": final_state,
        },
        started=started,
    ).emit(record_property)
    assert_survived(verdict, final_state, [resumed])
    # The job's Kafka traffic went through the proxy (more than one connection: it reconnected).
    assert connections > 1, connections
