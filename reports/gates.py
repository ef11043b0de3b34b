"""Release gates (``--gate 'direct_leak<=0.01'``) checked against the rows of the table.

A gate is checked on every row except ``none`` (the planted model, which leaks by construction:
it is the baseline) and ``retrain`` (the reference trained without the forget set: what unlearning
should approach, not a candidate for release). Rates are fractions, as `leakbench.options.Gate`
parses them. A gate fails on a row that has no number for its metric, and a gate with no row to
check fails too: a gate never passes for want of data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from leakbench.options import Gate
from reports.rows import ATTACKS, BASELINE, BREAKDOWN_METRICS, Row

NOT_GATED = (BASELINE, "retrain")
_MISSING = {
    "utility_retention": "no data: utility retention needs the none row (--algo must include "
    "none) with a non-zero capability pass@1",
    "worst_case_leak": "no data: no attack tests (--attacks must name at least one attack)",
    **{f"{attack}_leak": f"no data: no {attack} attack tests (--attacks must include {attack})"
       for attack in ATTACKS},
    **{name: "no data: no leak probe in this group (the run has these groups only where values "
             "are held in several texts or in formats outside the generated sets: cases/README.md, "
             "'One value in several files')" for name in BREAKDOWN_METRICS},
}


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    row: Row | None  # None: the run had no row to check the gate on
    reason: str = ""  # why there is no value

    @property
    def value(self) -> float | None:
        return None if self.row is None else self.row.metrics.get(self.gate.metric)

    @property
    def holds(self) -> bool:
        return self.value is not None and self.gate.holds(self.value)


def check(gates: Iterable[Gate], rows: list[Row]) -> list[GateResult]:
    candidates = [row for row in rows if row.algorithm not in NOT_GATED]
    results = []
    for gate in gates:
        if not candidates:
            results.append(GateResult(gate, None, "no data: no unlearned algorithm in the run "
                                      f"(rows {', '.join(NOT_GATED)} are not gated)"))
        for row in candidates:
            missing = _MISSING.get(gate.metric, f"no data: no {gate.metric} results")
            results.append(GateResult(gate, row, "" if gate.metric in row.metrics else missing))
    return results
