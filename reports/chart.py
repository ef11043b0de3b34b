"""leak_utility.png: per row, the leak rates beside capability pass@1, as grouped bars.

Drawn on a bare matplotlib `Figure` (no pyplot), which renders PNG with the Agg backend and
leaves the process's pyplot backend alone.
"""

from __future__ import annotations

import math
from pathlib import Path

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
