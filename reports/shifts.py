"""How leaks moved between the planted model and each unlearned variant, probe by probe.

The study behind LeakBench (arXiv 2502.05739) found that unlearning shifts leakage from direct
(the exact value) to indirect (part of it, a related or another record's value). Each forget
probe's indirect_leak record names its most specific leak (direct before partial, same_owner,
other_record), so each probe is in one state per row: none, direct or indirect. A shift counts
the probes of a variant whose state differs from the same probe's state on the ``none`` row of
the same model. The attack tests' records (`attack` set) are not compared here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from reports.records import Record
from reports.rows import BASELINE

MOVES = (
    ("none", "direct"),
    ("direct", "indirect"),
    ("direct", "none"),
    ("none", "indirect"),
    ("indirect", "direct"),
    ("indirect", "none"),
)


@dataclass(frozen=True)
class Shift:
    model: str | None
    algorithm: str
    compared: int  # probes in both rows
    moves: dict[tuple[str, str], int]  # (before, after) -> probes, for every pair in MOVES

    @property
    def unchanged(self) -> int:
        return self.compared - sum(self.moves.values())


def _state(category: str) -> str:
    return category if category in ("none", "direct") else "indirect"


def leak_shifts(records: Iterable[Record]) -> list[Shift]:
    """One shift per unlearned (model, algorithm) whose model has a ``none`` row, in the order
    the rows were first seen."""
    states: dict[tuple[str | None, str], dict[str, str]] = {}
    for record in records:
        if record.metric == "indirect_leak" and record.attack is None:
            states.setdefault((record.model, record.algorithm), {})[record.id] = _state(
                record.category)
    shifts = []
    for (model, algorithm), after in states.items():
        before = states.get((model, BASELINE))
        if algorithm == BASELINE or before is None:
            continue
        common = before.keys() & after.keys()
        moved = Counter((before[probe], after[probe]) for probe in common)
        shifts.append(Shift(model, algorithm, len(common), {move: moved[move] for move in MOVES}))
    return shifts
