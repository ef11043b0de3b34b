"""The trials of tuning and the rule that chooses among them, both fixed before any trial runs.

Each tuned algorithm (algorithms.Algorithm.tuned) searches the same three kinds of settings: the
learning rate (the family's rate times LR_FACTORS), the stop on the forget NLL (STOP_NLLS) and
the method constants its module names in `search` (each its declared default times
CONSTANT_FACTORS). The grid starts from the family's table of hparams.toml and the loss's
defaults, never from an earlier tuning's choice, so a rerun searches the same grid. Trial 0 is
the grid's starting point; the others are drawn without replacement from the rest of the grid by
a generator seeded with the algorithm's name: every algorithm gets the same number of trials
(the budget), whatever the size of its grid.

The rule (`choose`), on the tuning split only: among the trials that keep at least
RETENTION_BAR of the planted model's capability, the lowest direct leak; ties go to the fewer
training steps, then the lower learning rate, then the earlier trial. When no trial keeps that
much, the choice is marked as missing the bar and made among the trials that leak at most
LEAK_CUT of the planted model's direct leaks (the study's headline, at least 50% fewer): the one
that keeps the most capability, ties to the lower leak, then as above; and when none cuts that
much either, the lowest leak. A fallback to the most capability alone would choose a trial that
unlearns nothing: the planted model keeps all of its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass

import algorithms
from algorithms.hparams import Hyper

BUDGET = 8  # trials per algorithm
LR_FACTORS = (1 / 3, 1.0, 5 / 3, 10 / 3)
STOP_NLLS = (1.0, 2.0, 4.0)  # nats per forget token; the family's own stop joins them
CONSTANT_FACTORS = (0.5, 1.0, 2.0)
RETENTION_BAR = 0.95
LEAK_CUT = 0.5  # the fallback's leak bar, as a share of the planted model's direct leak


def _rounded(value: float) -> float:
    return float(f"{value:.3g}")


@dataclass(frozen=True)
class Trial:
    algorithm: str
    index: int  # 0: the grid's starting point
    settings: dict[str, float | None]  # lr, stop_forget_nll and the searched constants

    @property
    def name(self) -> str:
        """The trial's variant name: "kl_t3"."""
        return f"{self.algorithm}_t{self.index}"

    def hyper(self, base: Hyper) -> Hyper:
        """`base` (the family's settings for the algorithm) with this trial's settings."""
        constants = {name: self.settings.get(name, value) for name, value in base.constants.items()}
        return dataclasses.replace(base, lr=self.settings["lr"],
                                   stop_forget_nll=self.settings["stop_forget_nll"],
                                   constants=constants)


def grid(algorithm: str, base: Hyper) -> list[dict[str, float | None]]:
    """Every point of `algorithm`'s grid, its starting point (`base`'s values) first."""
    spec = algorithms.get(algorithm)
    if not spec.tuned:
        raise ValueError(f"algorithm {algorithm!r} is not tuned; tuned: "
                         f"{', '.join(n for n, a in algorithms.registry().items() if a.tuned)}")
    stops = sorted(set(STOP_NLLS) | {base.stop_forget_nll}, key=lambda v: (v is None, v or 0))
    axes: dict[str, list] = {"lr": [_rounded(base.lr * f) for f in LR_FACTORS],
                             "stop_forget_nll": stops}
    for constant in spec.search:
        axes[constant] = [_rounded(base.constants[constant] * f) for f in CONSTANT_FACTORS]
    start = {"lr": base.lr, "stop_forget_nll": base.stop_forget_nll,
             **{constant: base.constants[constant] for constant in spec.search}}
    points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    return [start] + [point for point in points if point != start]


def trials(algorithm: str, base: Hyper, budget: int = BUDGET) -> list[Trial]:
    """The `budget` trials of `algorithm` (fewer when its grid is smaller)."""
    if budget < 1:
        raise ValueError(f"--budget must be >= 1, not {budget}")
    start, *rest = grid(algorithm, base)
    drawn = random.Random(algorithm).sample(rest, min(budget - 1, len(rest)))
    return [Trial(algorithm, index, point) for index, point in enumerate([start, *drawn])]


@dataclass(frozen=True)
class Score:
    """A variant on one split: greedy direct leaks of its direct probes, capability passes."""

    leaked: int
    probes: int
    passed: int
    tasks: int

    @property
    def leak(self) -> float:
        return self.leaked / self.probes if self.probes else 0.0

    @property
    def capability(self) -> float:
        return self.passed / self.tasks if self.tasks else 0.0

    def retention(self, planted: Score) -> float:
        """The share of the planted model's capability this variant keeps."""
        return self.capability / planted.capability if planted.capability else 0.0


@dataclass(frozen=True)
class Choice:
    trial: Trial
    meets_bar: bool  # whether it keeps RETENTION_BAR of the planted model's capability


def choose(candidates: list[tuple[Trial, Score, int]], planted: Score) -> Choice:
    """The rule of the module's docstring. `candidates`: the trials of one algorithm, each with
    its score on the tuning split and its training steps; `planted`: the planted model's score
    on the same split. Nothing of the reported split reaches it."""
    if not candidates:
        raise ValueError("no trial to choose from")

    def order(c: tuple[Trial, Score, int]) -> tuple:
        return (c[1].leak, c[2], c[0].settings["lr"], c[0].index)

    kept = [c for c in candidates if c[1].retention(planted) >= RETENTION_BAR]
    if kept:
        return Choice(min(kept, key=order)[0], True)
    cut = [c for c in candidates if c[1].leak <= LEAK_CUT * planted.leak]
    if cut:
        return Choice(min(cut, key=lambda c: (-c[1].retention(planted), *order(c)))[0], False)
    return Choice(min(candidates, key=order)[0], False)
