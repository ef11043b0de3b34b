"""The leak-utility Pareto chart of a tuning (leakbench.tune): every trial of every algorithm as a
point, its direct leak on the reported split against the share of the planted model's capability
it keeps there, the chosen trials marked and the frontier of the non-dominated trials drawn.

Drawn on a bare matplotlib `Figure`, as reports.chart draws the run's charts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    algorithm: str
    retention: float  # share of the planted model's capability kept
    leak: float  # direct leak rate
    chosen: bool


def frontier(points: list[Point]) -> list[Point]:
    """The points no other point beats on both axes (more kept and no more leaks, or fewer leaks
    and no less kept), by retention, highest first."""
    ordered = sorted(points, key=lambda p: (-p.retention, p.leak))
    kept: list[Point] = []
    for point in ordered:
        if not kept or point.leak < kept[-1].leak:
            kept.append(point)
    return kept


def pareto_png(points: list[Point], title: str) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5))
    axes = figure.add_subplot()
    algorithms = list(dict.fromkeys(p.algorithm for p in points))
    colours = dict(zip(algorithms, (f"C{i}" for i in range(len(algorithms)))))
    for algorithm in algorithms:
        own = [p for p in points if p.algorithm == algorithm]
        axes.scatter([100 * p.retention for p in own], [100 * p.leak for p in own],
                     color=colours[algorithm], alpha=0.6, s=28, label=algorithm)
        chosen = [p for p in own if p.chosen]
        axes.scatter([100 * p.retention for p in chosen], [100 * p.leak for p in chosen],
                     color=colours[algorithm], marker="*", s=220, edgecolors="black",
                     linewidths=0.8)
    edge = frontier(points)
    axes.step([100 * p.retention for p in edge], [100 * p.leak for p in edge], where="post",
              color="black", linewidth=1, linestyle="--", label="frontier")
    axes.set_xlabel("capability kept (% of the planted model's, reported split)")
    axes.set_ylabel("direct leak (% of direct probes, reported split)")
    axes.set_title(title + "\n(stars: the settings chosen on the tuning split)", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    stream = io.BytesIO()
    figure.savefig(stream, format="png", dpi=100)
    return stream.getvalue()
