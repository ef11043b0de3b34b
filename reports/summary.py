"""Everything the end of a run reports, computed once from what the controller collected."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from leakbench.options import Gate
from reports.gates import GateResult, check
from reports.records import Collected, Record, Unrecorded
from reports.rows import ExtraMetrics, Row, build_rows
from reports.shifts import Shift, leak_shifts


@dataclass(frozen=True)
class Summary:
    records: list[Record]
    rows: list[Row]
    shifts: list[Shift]
    gates: list[GateResult]
    unrecorded: list[Unrecorded]

    @property
    def gates_hold(self) -> bool:
        """Every gate holds on every gated row, and no benchmark test is missing its result
        (an incomplete run never passes a release gate)."""
        return all(result.holds for result in self.gates) and not self.unrecorded


def summarize(collected: Collected, gates: Iterable[Gate],
              extra_metrics: ExtraMetrics | None = None) -> Summary:
    rows = build_rows(collected.records, extra_metrics)
    order = {(row.model, row.algorithm): index for index, row in enumerate(rows)}
    shifts = sorted(leak_shifts(collected.records),
                    key=lambda shift: order[(shift.model, shift.algorithm)])
    return Summary(list(collected.records), rows, shifts, check(gates, rows),
                   list(collected.unrecorded))
