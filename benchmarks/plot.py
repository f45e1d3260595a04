"""The scaling plot: W1 workflows/s against worker processes, one line per system.

    python -m benchmarks.plot benchmarks/results/<run>.json <out>.png

`benchmarks.run` calls this with whichever environment has matplotlib (a benchmark-only
dependency, in benchmarks/requirements.txt).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

LABELS = {"durable": "durable", "dbos": "DBOS Transact"}
COLORS = {"durable": "tab:blue", "dbos": "tab:orange"}


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    run = json.loads(source.read_text())
    machine, options = run["machine"], run["options"]
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for system, points in run["scaling"].items():
        workers = sorted(int(w) for w in points)
        medians = [statistics.median(points[str(w)]) for w in workers]
        low = [m - min(points[str(w)]) for m, w in zip(medians, workers, strict=True)]
        high = [max(points[str(w)]) - m for m, w in zip(medians, workers, strict=True)]
        axes.errorbar(
            workers,
            medians,
            yerr=[low, high],
            marker="o",
            capsize=4,
            label=LABELS.get(system, system),
            color=COLORS.get(system),
        )
        for w, m in zip(workers, medians, strict=True):
            axes.annotate(f"{m:,.0f}", (w, m), textcoords="offset points", xytext=(6, 6))
    axes.set_xlabel(f"worker processes (concurrency {options['concurrency']} each)")
    axes.set_ylabel("workflows/s (W1, 1 step each)")
    axes.set_xticks(sorted({int(w) for points in run["scaling"].values() for w in points}))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(
        f"W1 scaling on one PostgreSQL {machine['postgres'].split()[0]}, "
        f"{machine['nproc']} CPUs, {machine['date'][:10]}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(target)


if __name__ == "__main__":
    main()
