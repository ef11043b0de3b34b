"""The run's report files: results.md, results.csv, results.json, results.html (reports.html),
leak_utility.png, with attacks attacks.png, with several samples per probe leak_at_n.png, and
with the per-secret memorization tests memory.png.

Each appears whole or not at all (leakbench.atomic), so a reader (or a CI step that uploads the
directory) never sees half a file. The files hold the rows' numbers, the per-probe outcomes as
recorded (ids, categories, counts, and a leak probe's completion, masked unless --show-secrets:
only the records' known fields are kept) and the manifest, whose credentials are redacted
(reports.manifest); never a test's failure message. Control characters in results.md and in the
text cells of results.csv are escaped (results.json escapes them as JSON does).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from leakbench.atomic import replacing
from leakbench.redaction import escape_controls
from reports.chart import charts
from reports.html import page
from reports.manifest import facts
from reports.render import render
from reports.rows import metric_names
from reports.shifts import MOVES
from reports.summary import Summary

FORMAT = "leakbench-results/1"


def results_json(summary: Summary, manifest: dict) -> dict:
    return {
        "format": FORMAT,
        "manifest": manifest,
        "rows": [{"model": row.model, "algorithm": row.algorithm, "variant": row.variant,
                  "metrics": row.metrics,
                  "counts": {name: {"positives": c.positives, "total": c.total}
                             for name, c in row.counts.items()},
                  "retention_basis": list(row.retention_basis)} for row in summary.rows],
        "shifts": [{"model": s.model, "algorithm": s.algorithm, "compared": s.compared,
                    "unchanged": s.unchanged,
                    "moves": {f"{a}->{b}": s.moves[(a, b)] for a, b in MOVES}}
                   for s in summary.shifts],
        "gates": [{"gate": str(r.gate), "model": None if r.row is None else r.row.model,
                   "algorithm": None if r.row is None else r.row.algorithm, "value": r.value,
                   "holds": r.holds, "reason": r.reason} for r in summary.gates],
        "unrecorded": [{"test": u.test, "why": u.why} for u in summary.unrecorded],
        "outcomes": [record.as_dict() for record in summary.records],
    }


def _write_csv(summary: Summary, path: Path) -> None:
    names = metric_names(summary.rows)
    counted = [name for name in names if any(name in row.counts for row in summary.rows)]
    columns = ["model", "algorithm", "variant", "retention_basis", *names,
               *(f"{name}_{part}" for name in counted for part in ("positives", "total"))]
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, columns)
        writer.writeheader()
        for row in summary.rows:
            counts = {f"{name}_{part}": getattr(count, part)
                      for name, count in row.counts.items() for part in ("positives", "total")}
            text = {"model": row.model, "algorithm": row.algorithm, "variant": row.variant,
                    "retention_basis": "+".join(row.retention_basis)}
            writer.writerow({**{name: escape_controls(value) if value else value
                                for name, value in text.items()}, **row.metrics, **counts})


def _markdown(summary: Summary, manifest: dict) -> str:
    lines = [f"- {label}: `{text}`" if label == "command" else f"- {label}: {text}"
             for label, text in facts(manifest)]
    text = "# LeakBench results\n\n" + "\n".join(lines) + "\n\n" + render(summary, markdown=True)
    return "\n".join(escape_controls(line) for line in text.split("\n"))


def write_reports(summary: Summary, manifest: dict, directory: Path, *,
                  update_json: Callable[[dict], None] | None = None) -> list[Path]:
    """Write the report files into `directory`; `update_json` may change results.json's content
    in place first (the plugin's `pytest_leakbench_update_json` hook)."""
    directory.mkdir(parents=True, exist_ok=True)
    results = results_json(summary, manifest)
    if update_json is not None:
        update_json(results)
    text = json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False)
    drawn = charts(summary.rows)
    writers: dict[str, Callable[[Path], None]] = {
        "results.md": lambda p: p.write_text(_markdown(summary, manifest), encoding="utf-8"),
        "results.csv": lambda p: _write_csv(summary, p),
        "results.json": lambda p: p.write_text(text + "\n", encoding="utf-8"),
        "results.html": lambda p: p.write_text(page(summary, manifest, drawn), encoding="utf-8"),
        **{name: (lambda p, png=png: p.write_bytes(png)) for name, png in drawn.items()},
    }
    for name, write in writers.items():
        with replacing(directory / name) as temporary:
            write(temporary)
    return [directory / name for name in writers]
