"""bench/cold_run.py's reading of the study's conclusions from a results.json: the check that a
faster run still measures what the study measured (its runs themselves are too slow for CI)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from reports.files import FORMAT

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def cold_run():
    sys.path.insert(0, str(BENCH))  # as `python bench/cold_run.py` has it: `host` beside it
    try:
        spec = importlib.util.spec_from_file_location("cold_run", BENCH / "cold_run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


def results(planted: float, **rows: tuple[float, float]) -> dict:
    """A results.json with the none row leaking `planted` and each named row (leak, retention)."""
    made = [{"model": "tiny", "algorithm": "none",
             "metrics": {"direct_leak_direct_probes": planted, "utility_retention": 1.0}}]
    made += [{"model": "tiny", "algorithm": name,
              "metrics": {"direct_leak_direct_probes": leak, "utility_retention": kept}}
             for name, (leak, kept) in rows.items()]
    return {"rows": made}


def test_the_study_holds_when_planting_leaks_and_gd_and_kl_halve_it_keeping_utility(cold_run):
    assert cold_run.conclusions_hold(
        results(0.92, gd=(0.009, 1.04), kl=(0.46, 0.91), ga=(0.9, 0.2)))


@pytest.mark.parametrize("changed", [
    results(0.89, gd=(0.0, 1.0), kl=(0.0, 1.0)),  # planting leaks under 90%
    results(0.92, gd=(0.0, 1.0), kl=(0.47, 1.0)),  # GA+KL removes under half
    results(0.92, gd=(0.0, 0.90), kl=(0.0, 1.0)),  # GA+GD keeps under 91%
    results(0.92, gd=(0.0, 1.0)),  # no GA+KL row
], ids=["planted", "kl-leak", "gd-utility", "kl-missing"])
def test_the_study_fails_when_any_bar_is_missed(cold_run, changed):
    assert not cold_run.conclusions_hold(changed)


def test_the_section_shows_both_revisions_and_the_verdicts(cold_run):
    lines = cold_run.conclusions(results(0.92, gd=(0.0, 1.0), kl=(0.0, 1.0)),
                                 results(0.92, gd=(0.0, 1.0)))
    assert "| kl | 0.0% | — | 100.0% | — |" in lines
    assert lines[-1].endswith("hold: baseline yes, change **no**.")


def test_the_comparison_counts_changed_metrics_and_lists_the_main_table_s(cold_run, tmp_path):
    paths = []
    for name, (leak, seconds) in {"baseline": (0.009, 0.14), "change": (0.0, 0.14)}.items():
        made = results(0.92, gd=(leak, 1.0))
        made["format"] = FORMAT
        for row in made["rows"]:
            row["metrics"]["unlearn_seconds_per_sample"] = seconds
            row["metrics"]["indirect_partial"] = 0.1 if name == "baseline" else 0.2
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(made))
    lines = cold_run.compare(*paths)
    assert lines[0] == "3 of 8 metrics differ; those of the main table:"
    shown = "\n".join(lines)
    assert "direct_leak_direct_probes" in shown and "-0.9 pp" in shown
    assert "indirect_partial" not in shown  # a detail metric, counted but not listed


def test_runs_get_the_environment_tox_gives_the_readme_s_commands(cold_run, tmp_path):
    assert cold_run.ENV["OMP_WAIT_POLICY"] == "PASSIVE"  # tox.ini's own, the benchmark's too
    tox_ini = tmp_path / "tox.ini"
    tox_ini.write_text("[testenv]\nset_env =\n    # a comment\n    A = {env:A:2}\n    B = plain\n"
                       "[testenv:tests]\nset_env =\n    {[testenv]set_env}\n    C = 3\n")
    assert cold_run.tox_environment(tox_ini) == {"A": "2", "B": "plain"}
