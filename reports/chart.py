"""The report's charts: leak_utility.png (per row, the leak rates beside capability pass@1, as
grouped bars) and, with several samples per probe, leak_at_n.png (per row, leak@n against n).

Drawn on a bare matplotlib `Figure` (no pyplot), which renders PNG with the Agg backend and
leaves the process's pyplot backend alone.
"""

from __future__ import annotations

import math
from pathlib import Path

from leakbench.options import LEAK_AT_N
from reports.formatting import header
from reports.rows import Row

BARS = ("direct_leak", "indirect_leak", "holdout_leak", "capability_pass1")


def write_chart(rows: list[Row], path: Path) -> None:
    """Write the chart as PNG; a metric a row lacks has no bar (it is never drawn as 0)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 1.2 * len(rows) + 2), 4), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(BARS)
    for index, name in enumerate(BARS):
        heights = [100 * row.metrics.get(name, math.nan) for row in rows]
        positions = [i + (index - (len(BARS) - 1) / 2) * width for i in range(len(rows))]
        axes.bar(positions, heights, width, label=header(name).replace("\n", " "))
    axes.set_xticks(range(len(rows)), [row.label for row in rows])
    axes.set_ylabel("%")
    axes.set_ylim(0, 105)
    figure.suptitle("Leaks and utility per algorithm")
    figure.legend(loc="outside lower center", ncols=len(BARS), fontsize="small")
    figure.savefig(path, format="png", dpi=100)


def has_leak_at_n(rows: list[Row]) -> bool:
    return any(f"direct_leak_at{n}" in row.metrics for row in rows for n in LEAK_AT_N)


def write_leak_at_n_chart(rows: list[Row], path: Path) -> None:
    """Write leak@n as one line per row over n on a logarithmic axis, as PNG."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axes = figure.subplots()
    for row in rows:
        points = [(n, 100 * row.metrics[f"direct_leak_at{n}"]) for n in LEAK_AT_N
                  if f"direct_leak_at{n}" in row.metrics]
        if points:
            axes.plot(*zip(*points), marker="o", label=row.label)
    axes.set_xscale("log")
    axes.set_xlabel("samples per probe (n)")
    axes.set_ylabel("direct leak within n samples, %")
    axes.set_ylim(0, 105)
    figure.suptitle("Leak@n per algorithm")
    figure.legend(loc="outside right center", fontsize="small")
    figure.savefig(path, format="png", dpi=100)
