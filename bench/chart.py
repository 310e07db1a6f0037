"""The PNG beside each run's table: W1 throughput per concurrency and database (log scale),
W2 tasks/s, W3 kill→drained time. Needs matplotlib, so it runs from bench/.venv-peers:

    bench/.venv-peers/bin/python -m bench.chart bench/results/bench-X.json out.png
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

COLORS = {
    "baton": "#d62728",
    "limit": "#7f7f7f",
    "dbos": "#1f77b4",
    "dbos-direct": "#17becf",
    "temporal": "#2ca02c",
    "baton-sdk": "#ff9896",
}


def main(src: Path, dst: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[dict[str, Any]] = [r for r in json.loads(src.read_text()) if r.get("ok")]
    dbs = list(dict.fromkeys(r["db"] for r in rows))
    w1 = [r for r in rows if r["workload"] == "w1"]
    fig, axes = plt.subplots(2, max(2, len(dbs)), figsize=(13, 8.5), squeeze=False)
    for i, db in enumerate(dbs):
        ax = axes[0][i]
        rs = [r for r in w1 if r["db"] == db]
        systems = list(dict.fromkeys(r["system"] for r in rs))
        concs = sorted({r["concurrency"] for r in rs})
        width = 0.8 / max(1, len(systems))
        for j, s in enumerate(systems):
            vals = []
            for c in concs:
                v = [r["wf_per_s"] for r in rs if r["system"] == s and r["concurrency"] == c]
                vals.append(statistics.median(v) if v else 0)
            xs = [k + j * width for k in range(len(concs))]
            bars = ax.bar(xs, vals, width, label=s, color=COLORS.get(s))
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks([k + width * (len(systems) - 1) / 2 for k in range(len(concs))])
        ax.set_xticklabels([f"C={c}" for c in concs])
        ax.set_yscale("log")
        ax.set_ylabel("completed workflows/s (log)")
        ax.set_title(f"W1: 2 HTTP steps, {db}")
        ax.legend(fontsize=8)

    ax = axes[1][0]
    w2 = [r for r in rows if r["workload"] == "w2"]
    labels, vals, colors = [], [], []
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in w2:
        by[(r["db"], r["system"])].append(r["tasks_per_s"])
    for (db, s), v in by.items():
        short = {"baton": "Baton raw", "baton-sdk": "Baton SDK"}.get(s, s)
        labels.append(f"{db}\n{short}")
        vals.append(statistics.median(v))
        colors.append(COLORS.get(s, "#999"))
    bars = ax.bar(labels, vals, color=colors)
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("tasks/s")
    ax.set_title("W2: worker round trips (tasks queued first, then drained)")

    ax = axes[1][1]
    w3 = [r for r in rows if r["workload"] == "w3"]
    labels = [f"{r['db']}\n{r['system']}" for r in w3]
    vals = [r["drain_s"] or 0 for r in w3]
    bars = ax.bar(labels, vals, color=[COLORS.get(r["system"], "#999") for r in w3])
    notes = [
        f"lost {r['lost']}, dup {r['duplicates']}"
        + (f"\n{r['unfinished']} not done after {r['waited_s']:.0f}s" if r["unfinished"] else "")
        for r in w3
    ]
    ax.bar_label(bars, labels=notes, fontsize=7)
    ax.set_ylabel("kill -9 → all completed, s")
    ax.set_title("W3: crash and restart")
    for extra in axes[1][2:]:
        extra.axis("off")
    fig.suptitle(f"Baton benchmark {src.stem} (2-core machine, loopback)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
