"""The benchmark's table and report: ratios to the raw loop, bars for throughput and CPU.

Rows are ``bench.compare.Measurement`` dicts. ``table`` is plain text for the terminal and the
issue; ``write`` renders a PNG (matplotlib, headless) and an HTML page that embeds it with the
table, the per-process CPU and any differences from the oracle.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BASELINE = "raw"

Row = Mapping[str, Any]


def ratio(value: float, baseline: float) -> float | None:
    """``value / baseline`` rounded to 2 places; None when the baseline is 0 or missing."""
    if not baseline:
        return None
    return round(value / baseline, 2)


def with_ratios(rows: Sequence[Row], baseline: str = BASELINE) -> list[dict[str, Any]]:
    """Rows plus ``eps_vs_raw`` and ``cpu_vs_raw`` (None when there is no ``baseline`` row)."""
    base = next((r for r in rows if r["system"] == baseline), None)
    out = []
    for r in rows:
        out.append(
            {
                **r,
                "eps_vs_raw": ratio(r["sustained_eps"], base["sustained_eps"]) if base else None,
                "cpu_vs_raw": ratio(r["cpu_s_per_million"], base["cpu_s_per_million"])
                if base
                else None,
            }
        )
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


COLUMNS = (
    ("system", "system"),
    ("records", "records"),
    ("startup_s", "start-up s"),
    ("sustained_eps", "events/s"),
    ("eps_vs_raw", "x raw"),
    ("end_to_end_eps", "e2e events/s"),
    ("cpu_s_per_million", "CPU-s/M"),
    ("cpu_vs_raw", "x raw"),
    ("peak_rss_mb", "peak RSS MB"),
    ("correct", "matches oracle"),
)


def table(rows: Sequence[Row]) -> str:
    """A fixed-width text table with ratios to the raw loop, one line per system."""
    full = with_ratios(rows)
    cells = [[title for _, title in COLUMNS]]
    cells += [[_fmt(r.get(key)) for key, _ in COLUMNS] for r in full]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [
        f"{r['system']}: events/s from {r['sustained_basis']}"
        + (f"; {r['note']}" if r.get("note") else "")
        for r in full
    ]
    return "\n".join([*lines, "", *notes])


def png(rows: Sequence[Row]) -> bytes:
    """Two bar charts: sustained events/s and CPU-seconds per million events, by system."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on the bench machine
    import matplotlib.pyplot as plt

    names = [r["system"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, [r["sustained_eps"] for r in rows], color="#4a7ab5")
    left.set_title("sustained input events/s (higher is better)")
    right.bar(names, [r["cpu_s_per_million"] for r in rows], color="#b5654a")
    right.set_title("CPU-seconds per million events (lower is better)")
    for axis in (left, right):
        for bar in axis.patches:
            axis.annotate(
                f"{bar.get_height():.0f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    return _png_bytes(fig)


def _png_bytes(fig: Any) -> bytes:
    """A finished matplotlib figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write(rows: Sequence[Row], html_path: Path, png_path: Path) -> Path:
    """Writes the PNG and an HTML page embedding it; returns the HTML path."""
    image = png(rows)
    encoded = base64.b64encode(image).decode()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(image)
    details = "".join(
        f"<h3>{html.escape(r['system'])}</h3><pre>"
        + html.escape(
            "CPU s by process: "
            + ", ".join(f"{k} {v}" for k, v in r.get("cpu_by_process", {}).items())
            + "\noutput records: "
            + ", ".join(f"{k} {v}" for k, v in r.get("outputs", {}).items())
            + ("\ndifferences:\n  " + "\n  ".join(r["differences"]) if r.get("differences") else "")
        )
        + "</pre>"
        for r in rows
    )
    html_path.write_text(
        "<!doctype html><meta charset=utf-8><title>bench.compare</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}</style>"
        "<h1>Property topology: Beam (Prism, Flink) vs a raw confluent-kafka loop</h1>"
        f"<pre>{html.escape(table(rows))}</pre>"
        "<p>Latency at 50 % load: <a href='latency.html'>latency.html</a> (bench.latency).</p>"
        f"<img alt='throughput and CPU' src='data:image/png;base64,{encoded}'>"
        f"<h2>Details</h2>{details}",
        encoding="utf-8",
    )
    return html_path


# ---- latency (bench.latency) --------------------------------------------------------------------

LATENCY_PATHS = ("enriched", "high_value", "alerts", "counts_by_zip", "views_hourly")
LATENCY_TITLES = {
    "enriched": "enriched (stateless: validate → enrich from cache → write)",
    "high_value": "high-value (stateless)",
    "alerts": "fraud alerts (crossing view → alert)",
    "counts_by_zip": "counts by zip (k-th event → count k)",
    "views_hourly": "hourly views (window end → first pane)",
}


def latency_table(rows: Sequence[Row]) -> str:
    """One line per system and output path: records, rate, p50/p90/p99/max ms, oracle check."""
    head = ["system", "path", "n", "rate/s", "load", "p50 ms", "p90 ms", "p99 ms", "max ms", "ok"]
    cells = [head]
    for r in rows:
        for path in LATENCY_PATHS:
            s = r["paths"].get(path, {})
            cells.append(
                [
                    r["system"],
                    path,
                    _fmt(s.get("count", 0)),
                    _fmt(r["achieved_eps"]),
                    _fmt(ratio(r["rate_eps"], r["max_eps"])),
                    *(_fmt(s.get(k)) for k in ("p50", "p90", "p99", "max")),
                    _fmt(r["correct"]),
                ]
            )
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [
        f"{r['system']}: {r['records']} records, warm after {r['warmup_s']} s, "
        f"{r['cpu_s_per_million']} CPU-s/M; enriched p50 by fifth of the run "
        f"{r['paths'].get('enriched', {}).get('trend_p50')}; {r['note']}"
        + (f"; flags {' '.join(r['flags'])}" if r.get("flags") else "")
        + (f"; applied by the runner {r['effective']}" if r.get("effective") else "")
        + (
            f"; unmatched {dict((k, v) for k, v in r['unmatched'].items() if v)}"
            if any(r["unmatched"].values())
            else ""
        )
        + (f"; DIFFERS from the oracle: {r['differences']}" if r["differences"] else "")
        for r in rows
    ]
    return "\n".join([*lines, "", *notes])


def latency_png(rows: Sequence[Row]) -> bytes:
    """One CDF per output path (latency ms, log scale), one line per system."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on the bench machine
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LATENCY_PATHS), figsize=(4 * len(LATENCY_PATHS), 3.6))
    for axis, path in zip(axes, LATENCY_PATHS, strict=True):
        for r in rows:
            points = r["cdf"].get(path) or []
            if points:
                xs, ys = zip(*points, strict=True)
                axis.step([max(x, 1.0) for x in xs], ys, where="post", label=r["system"])
        axis.set_xscale("log")
        axis.set_title(LATENCY_TITLES[path], fontsize=8)
        axis.set_xlabel("ms (log)")
        axis.set_ylim(0, 1.01)
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("fraction of output records")
    axes[0].legend(fontsize=8)
    return _png_bytes(fig)


def write_latency(rows: Sequence[Row], html_path: Path, png_path: Path) -> Path:
    """Writes the CDF PNG and an HTML page with the latency table; returns the HTML path."""
    image = latency_png(rows)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(image)
    encoded = base64.b64encode(image).decode()
    details = "".join(
        f"<h3>{html.escape(r['system'])}</h3><pre>"
        + html.escape(
            f"flags: {' '.join(r.get('flags', [])) or '-'}\n"
            f"as the runner applied them: {r.get('effective') or '-'}\n"
            "CPU s by process: "
            + ", ".join(f"{k} {v}" for k, v in r.get("cpu_by_process", {}).items())
            + "\noutput records: "
            + ", ".join(f"{k} {v}" for k, v in r.get("outputs", {}).items())
        )
        + "</pre>"
        for r in rows
    )
    html_path.write_text(
        "<!doctype html><meta charset=utf-8><title>bench.latency</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}</style>"
        "<h1>End-to-end latency at 50 % load: input append → output append</h1>"
        "<p>Throughput: <a href='compare.html'>compare.html</a>. Definitions: "
        "<code>python -m bench.latency --help</code>.</p>"
        f"<pre>{html.escape(latency_table(rows))}</pre>"
        f"<img alt='latency CDF per path' src='data:image/png;base64,{encoded}'>"
        f"<h2>Details</h2>{details}",
        encoding="utf-8",
    )
    return html_path
