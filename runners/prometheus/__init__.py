"""The stack's Prometheus server: scrapes the Flink session cluster's reporters, evaluates the
alert rules of ``runners/prometheus/alerts.rules.yml``.

``python -m runners.local up prometheus`` (Debian's ``prometheus`` package, installed by ``make
setup``; ``runners/local/prometheus_service.py``) writes ``config(scrape_targets(...))`` into the
service's data directory: one target per Prometheus reporter of ``flink-cluster`` (the
JobManager's and each TaskManager's); ``up`` prints the UI address. Started before the cluster or
with another cluster, it is restarted by ``up`` to scrape the running one. ``job_lines`` is what
``runners.local status`` says of each job.

What Flink exports and how it is renamed at scrape time (``METRIC_RELABEL``):

- Beam's user counters reach Flink's metric system through Beam's Flink runner, one Flink
  counter ``<namespace>.<name>`` per operator (a fused stage) and subtask, which Flink's reporter
  names ``flink_taskmanager_job_task_operator_<namespace>_<name>`` (every character outside
  ``[a-zA-Z0-9_:]`` becomes ``_``). They are renamed ``<namespace>_<name>``: the pipeline's
  ``property_streams_*`` (``transforms/metrics.py``) and the enrichment's
  ``enrichment_market_data_*``, labelled with Flink's ``job_name``, ``operator_name``,
  ``subtask_index``, ``tm_id``... Sum over the labels for the job's total.
- Kafka IO's estimate of the bytes still to read per partition (a Beam gauge of its SDF read:
  ``KafkaIOReader`` ``rawSize/backlogBytes_<topic>-<partition>``, offsets behind the partition's
  end times the mean record size) becomes ``kafka_consumer_backlog_bytes{topic, partition}``
  (the topic with ``-`` and ``.`` turned into ``_``, as Flink's reporter leaves it). It is
  updated when the read polls records, so it holds the last estimate while nothing arrives.
- Flink's own metrics keep their names (``flink_jobmanager_job_numRestarts``,
  ``flink_jobmanager_job_uptime``, ``flink_taskmanager_job_task_numRecordsInPerSecond``...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).resolve().parent / "alerts.rules.yml"
#: Scrape and rule evaluation period. Short for a local stack whose tests read metrics back;
#: Prometheus's own default is 1 minute.
SCRAPE_INTERVAL = "2s"

_OPERATOR = "flink_taskmanager_job_task_operator_"

#: Scrape-time renames of what Beam's Flink runner registers (see the module docstring).
METRIC_RELABEL: list[dict[str, Any]] = [
    {
        "source_labels": ["__name__"],
        "regex": _OPERATOR + "KafkaIOReader_rawSize_backlogBytes_(.+)_([0-9]+)",
        "target_label": "topic",
        "replacement": "$1",
    },
    {
        "source_labels": ["__name__"],
        "regex": _OPERATOR + "KafkaIOReader_rawSize_backlogBytes_(.+)_([0-9]+)",
        "target_label": "partition",
        "replacement": "$2",
    },
    {
        "source_labels": ["__name__"],
        "regex": _OPERATOR + "KafkaIOReader_rawSize_backlogBytes_.+",
        "target_label": "__name__",
        "replacement": "kafka_consumer_backlog_bytes",
    },
    {
        "source_labels": ["__name__"],
        "regex": _OPERATOR + "(property_streams_.+|enrichment_market_data_.+)",
        "target_label": "__name__",
        "replacement": "$1",
    },
]


def scrape_targets(state: Mapping[str, Any]) -> list[str]:
    """``host:port`` of every Prometheus reporter of the recorded ``flink-cluster`` (JobManager
    first), [] when no cluster is recorded."""
    rec = state.get("flink-cluster")
    if rec is None:
        return []
    roles = sorted((r for r in rec.ports if r.startswith("prom-")), key=_role_order)
    return [f"127.0.0.1:{rec.ports[r]}" for r in roles]


def _role_order(role: str) -> tuple[int, int]:
    if role == "prom-jm":
        return (0, 0)
    tail = role.removeprefix("prom-tm").lstrip("-")
    return (1, int(tail) if tail else 1)


def config(targets: list[str], rules_file: Path = RULES_FILE) -> dict[str, Any]:
    """``prometheus.yml`` (as a dict; JSON is valid YAML) scraping ``targets``."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules_file)],
        "scrape_configs": [
            {
                "job_name": "flink",
                "static_configs": [{"targets": targets}],
                "metric_relabel_configs": METRIC_RELABEL,
            }
        ],
    }


def query(url: str, promql: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The result vector of an instant query of Prometheus's HTTP API (``/api/v1/query``)."""
    import urllib.parse
    import urllib.request

    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(full, timeout=timeout_s) as resp:
        reply = json.loads(resp.read())
    if reply.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {promql!r}: {reply}")
    return list(reply["data"]["result"])


def _by_job(url: str, promql: str) -> dict[str, float]:
    return {r["metric"].get("job_id", ""): float(r["value"][1]) for r in query(url, promql)}


def job_lines(url: str) -> list[str]:
    """What ``runners.local status`` says of each Flink job Prometheus scrapes: its status
    (Flink's ``<status>State`` gauges), uptime, restarts, records in and out per second over the
    last minute, dead letters, and the Kafka backlog per topic."""
    statuses: dict[str, str] = {}
    names: dict[str, str] = {}
    for r in query(url, '{__name__=~"flink_jobmanager_job_[a-zA-Z]+State"} == 1'):
        jid = r["metric"].get("job_id", "")
        statuses[jid] = r["metric"]["__name__"].removeprefix("flink_jobmanager_job_")[:-5]
        names[jid] = r["metric"].get("job_name", "")
    uptime = _by_job(url, "flink_jobmanager_job_uptime")
    restarts = _by_job(url, "flink_jobmanager_job_numRestarts")
    rate_in = _by_job(url, "rate(property_streams:decoded:sum[1m])")
    rate_out = _by_job(url, "rate(property_streams:encoded:sum[1m])")
    dead = _by_job(url, "property_streams:dead_lettered:sum")
    backlog: dict[str, list[str]] = {}
    for r in query(url, "kafka_consumer_backlog_bytes:sum"):
        jid = r["metric"].get("job_id", "")
        backlog.setdefault(jid, []).append(
            f"{r['metric'].get('topic', '?')} {float(r['value'][1]) / 1024:.0f} KiB"
        )
    lines = []
    for jid in sorted(statuses, key=lambda j: -uptime.get(j, 0)):
        lines.append(
            f"job {jid[:8]} {names[jid][:40]:<40} {statuses[jid].upper():<10}"
            f" up {uptime.get(jid, 0) / 1000:7.0f}s  restarts {restarts.get(jid, 0):.0f}"
            f"  in {rate_in.get(jid, 0):6.1f}/s  out {rate_out.get(jid, 0):6.1f}/s"
            f"  dead letters {dead.get(jid, 0):.0f}"
            f"  backlog: {', '.join(sorted(backlog.get(jid, []))) or '-'}"
        )
    return lines
