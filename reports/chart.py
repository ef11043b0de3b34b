"""The report's charts: leak_utility.png (per row, the leak rates beside capability pass@1, as
grouped bars); with attacks, attacks.png (per row, the direct leak before and after each attack);
with several samples per probe, leak_at_n.png (per row, leak@n against n); with the per-secret
memorization tests, memory.png (per row, the greedy direct leak beside the secrets still above
every decoy and those forgotten).

Drawn on a bare matplotlib `Figure` (no pyplot), which renders PNG with the Agg backend and
leaves the process's pyplot backend alone. Each chart is drawn once, as PNG bytes: the report
writes them as files and embeds them in results.html.
"""

from __future__ import annotations

import io
import math

from leakbench.options import LEAK_AT_N
from reports.formatting import header
from reports.rows import ATTACKS, Row

BARS = ("direct_leak_direct_probes", "indirect_leak", "holdout_leak", "capability_pass1")


def charts(rows: list[Row]) -> dict[str, bytes]:
    """The run's charts by file name, as PNG: leak_utility.png always, attacks.png,
    leak_at_n.png and memory.png when the rows have their metrics."""
    drawn = {"leak_utility.png": _grouped_bars(rows, BARS, "Leaks and utility per algorithm")}
    if attack_bars(rows):
        drawn["attacks.png"] = _grouped_bars(rows, attack_bars(rows),
                                             "Direct leak before and after each attack")
    if _has_leak_at_n(rows):
        drawn["leak_at_n.png"] = _leak_at_n(rows)
    memory = memory_bars(rows)
    if memory:
        drawn["memory.png"] = _grouped_bars(rows, memory, "Greedy leaks against the memory "
                                            "per secret")
    return drawn


def memory_bars(rows: list[Row]) -> tuple[str, ...]:
    """The memory chart's bars, when the run measured memory per secret: the greedy direct leak
    beside the share of secrets still above every decoy and the share forgotten by every score,
    the gap between closing the greedy path and forgetting."""
    memory = tuple(name for name in ("exposure_top_share", "forgotten_secrets")
                   if any(name in row.metrics for row in rows))
    return ("direct_leak_direct_probes", *memory) if memory else ()


def attack_bars(rows: list[Row]) -> tuple[str, ...]:
    """The attack chart's bars: the leak before any attack, then each attack's the run has."""
    attacked = tuple(f"{attack}_leak" for attack in ATTACKS
                     if any(f"{attack}_leak" in row.metrics for row in rows))
    return ("evaluated_leak", *attacked) if attacked else ()


def _png(figure) -> bytes:
    stream = io.BytesIO()
    figure.savefig(stream, format="png", dpi=100)
    return stream.getvalue()


def _grouped_bars(rows: list[Row], bars: tuple[str, ...], title: str) -> bytes:
    """One group of bars per row, one bar per metric; a metric a row lacks has no bar (it is never
    drawn as 0)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 1.2 * len(rows) + 2), 4), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(bars)
    for index, name in enumerate(bars):
        heights = [100 * row.metrics.get(name, math.nan) for row in rows]
        positions = [i + (index - (len(bars) - 1) / 2) * width for i in range(len(rows))]
        axes.bar(positions, heights, width, label=header(name).replace("\n", " "))
    axes.set_xticks(range(len(rows)), [row.label for row in rows])
    axes.set_ylabel("%")
    axes.set_ylim(0, 105)
    figure.suptitle(title)
    figure.legend(loc="outside lower center", ncols=min(len(bars), 4), fontsize="small")
    return _png(figure)


def _has_leak_at_n(rows: list[Row]) -> bool:
    return any(f"direct_leak_at{n}" in row.metrics for row in rows for n in LEAK_AT_N)


def _leak_at_n(rows: list[Row]) -> bytes:
    """Leak@n as one line per row over n on a logarithmic axis."""
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
    return _png(figure)
