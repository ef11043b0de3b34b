"""Determinism: greedy runs with the same seed give byte-identical tables (timings aside), whether
the completions come from the cache or from a fresh engine.

The shared micro run generates every completion (`first`); `second` runs the same command on the
same cache. A third, independent generation is the run that recovers from the faults
(test_faults.py compares its table with `first`'s).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_helpers import outcomes, results_md, tables

pytestmark = [pytest.mark.engine, pytest.mark.training]


def test_second_run_reads_the_cache(micro_runs, second_run) -> None:
    """No engine in the second run: its engine job files are those the first run left."""
    assert micro_runs["engine_jobs_after_first"], "the first run started no engine"
    assert micro_runs["engine_jobs_after_second"] == micro_runs["engine_jobs_after_first"]


def test_cached_run_gives_the_identical_table(first_run, second_run) -> None:
    assert tables(results_md(second_run)) == tables(results_md(first_run))


def test_cached_run_gives_identical_outcomes_per_probe(first_run, second_run) -> None:
    first, second = outcomes(first_run), outcomes(second_run)
    assert first and second == first


def test_tables_differ_only_in_the_excluded_lines(first_run) -> None:
    """What `tables` leaves out: the run's time, its command and the timing column."""
    full = results_md(first_run)
    kept = tables(full)
    assert "- run:" in full and "- run:" not in kept
    assert "- command:" in full and "- command:" not in kept
    headers = [line for line in kept.splitlines() if line.startswith("| model")]
    assert headers and not any("unlearn s/sample" in line for line in headers)
    assert any("unlearn s/sample" in line for line in full.splitlines() if line.startswith("|"))
    assert "| micro" in kept


def test_cached_run_gives_the_identical_csv(first_run, second_run) -> None:
    """results.csv holds the same rows; its timing column comes from the same cached artifacts."""
    assert (Path(first_run.report_dir) / "results.csv").read_text() == (
        Path(second_run.report_dir) / "results.csv").read_text()
