"""Tuning: the grid and its trials, the selection rule on synthetic results, the tuned tables of
hparams.toml, the Pareto frontier, and a one-trial tuning of `micro` end to end."""

import json
import shutil
import tomllib
from pathlib import Path

import pytest

import algorithms
from algorithms.hparams import HPARAMS_PATH, load_hparams
from leakbench.tune import hparams_file
from leakbench.tune.__main__ import main
from leakbench.tune.trials import (
    CONSTANT_FACTORS,
    LR_FACTORS,
    RETENTION_BAR,
    Score,
    Trial,
    choose,
    grid,
    trials,
)
from reports.pareto import Point, frontier

TUNED = [name for name, spec in algorithms.registry().items() if spec.tuned]


def test_every_loss_algorithm_but_the_one_chosen_against_relearning_is_tuned():
    assert TUNED == ["ga", "gd", "kl", "npo", "simnpo", "selective"]
    assert not algorithms.get("kl_far").tuned


@pytest.mark.parametrize("algorithm", TUNED)
def test_the_grid_starts_at_the_family_settings_and_searches_the_declared_constants(algorithm):
    base = load_hparams("tiny", algorithm, own_table=False)
    points = grid(algorithm, base)
    assert points[0] == {"lr": base.lr, "stop_forget_nll": base.stop_forget_nll,
                         **{c: base.constants[c] for c in algorithms.get(algorithm).search}}
    assert len(points) == len({json.dumps(p, sort_keys=True) for p in points})
    searched = set(points[0]) - {"lr", "stop_forget_nll"}
    assert searched == set(algorithms.get(algorithm).search)
    assert len(points) == (len(LR_FACTORS) * len({p["stop_forget_nll"] for p in points})
                           * len(CONSTANT_FACTORS) ** len(searched))


def test_every_algorithm_gets_the_same_budget_and_a_rerun_draws_the_same_trials():
    drawn = {a: trials(a, load_hparams("tiny", a, own_table=False), 5) for a in TUNED}
    assert {len(t) for t in drawn.values()} == {5}
    assert drawn == {a: trials(a, load_hparams("tiny", a, own_table=False), 5) for a in TUNED}
    for algorithm_trials in drawn.values():
        assert [t.index for t in algorithm_trials] == list(range(5))
        assert len({json.dumps(t.settings, sort_keys=True) for t in algorithm_trials}) == 5
    ga = load_hparams("tiny", "ga", own_table=False)
    assert len(trials("ga", ga, 1000)) == len(grid("ga", ga))  # a small grid: all of it


def test_a_trial_changes_only_its_settings():
    base = load_hparams("tiny", "npo", own_table=False)
    trial = Trial("npo", 3, {"lr": 1e-5, "stop_forget_nll": 2.0, "beta": 0.2, "alpha": 0.5})
    hp = trial.hyper(base)
    assert (hp.lr, hp.stop_forget_nll, hp.constants) == (1e-5, 2.0, {**base.constants,
                                                                    "beta": 0.2, "alpha": 0.5})
    assert (hp.epochs, hp.batch_size, hp.mode) == (base.epochs, base.batch_size, base.mode)


def test_an_untuned_algorithm_has_no_grid():
    with pytest.raises(ValueError, match="kl_far.*not tuned; tuned: ga, gd"):
        grid("kl_far", load_hparams("tiny", "kl_far", own_table=False))


def _trial(index: int, lr: float = 3e-5) -> Trial:
    return Trial("kl", index, {"lr": lr, "stop_forget_nll": 1.0})


PLANTED = Score(leaked=90, probes=100, passed=100, tasks=200)  # capability 0.5


def test_the_rule_takes_the_lowest_leak_among_trials_that_keep_enough_capability():
    kept = int(200 * 0.5 * RETENTION_BAR)  # exactly at the bar
    candidates = [(_trial(0), Score(0, 100, kept - 1, 200), 10),  # leaks least, keeps too little
                  (_trial(1), Score(5, 100, kept, 200), 40),
                  (_trial(2), Score(3, 100, 100, 200), 45)]
    choice = choose(candidates, PLANTED)
    assert (choice.trial.index, choice.meets_bar) == (2, True)


def test_ties_go_to_fewer_steps_then_the_lower_rate_then_the_earlier_trial():
    good = Score(1, 100, 100, 200)
    assert choose([(_trial(0), good, 45), (_trial(1), good, 30)], PLANTED).trial.index == 1
    assert choose([(_trial(0, 1e-4), good, 30), (_trial(1, 1e-5), good, 30)],
                  PLANTED).trial.index == 1
    assert choose([(_trial(0), good, 30), (_trial(1), good, 30)], PLANTED).trial.index == 0


def test_when_no_trial_keeps_enough_the_one_that_keeps_most_among_those_that_halve_the_leak():
    choice = choose([(_trial(0), Score(0, 100, 20, 200), 10),  # forgets, keeps little
                     (_trial(1), Score(40, 100, 60, 200), 10),  # leaks less than half: kept
                     (_trial(2), Score(50, 100, 90, 200), 10)],  # keeps most, forgets little
                    PLANTED)
    assert (choice.trial.index, choice.meets_bar) == (1, False)


def test_when_no_trial_halves_the_leak_either_the_lowest_leak_is_chosen():
    choice = choose([(_trial(0), Score(60, 100, 20, 200), 10),
                     (_trial(1), Score(80, 100, 90, 200), 10)], PLANTED)
    assert (choice.trial.index, choice.meets_bar) == (0, False)


def test_the_rule_needs_a_trial():
    with pytest.raises(ValueError, match="no trial"):
        choose([], PLANTED)


@pytest.fixture
def hparams(tmp_path) -> Path:
    """A copy of hparams.toml without tiny's tuned block."""
    copy = tmp_path / "hparams.toml"
    copy.write_text(hparams_file.split_block(HPARAMS_PATH.read_text(), "tiny")[0])
    return copy


def test_tuned_tables_load_as_the_trials_settings_and_a_rewrite_keeps_the_others(hparams):
    ga = {"lr": 1e-5, "stop_forget_nll": 2.0}
    npo = {"lr": 5e-5, "stop_forget_nll": 1.0, "beta": 0.05, "alpha": 2.0}
    hparams_file.write("tiny", {"ga": hparams_file.table("tiny", "ga", ga, "1 of 8: ..."),
                                "npo": hparams_file.table("tiny", "npo", npo, "4 of 8: ...")},
                       path=hparams)
    loaded = load_hparams("tiny", "npo", path=hparams)
    assert (loaded.lr, loaded.stop_forget_nll, loaded.constants["beta"],
            loaded.constants["alpha"]) == (5e-5, 1.0, 0.05, 2.0)
    assert "# trial 4 of 8: ..." in hparams.read_text()
    hparams_file.write("tiny", {"ga": hparams_file.table("tiny", "ga", {**ga, "lr": 3e-5},
                                                         "2 of 8: ...")}, path=hparams)
    assert hparams_file.written("tiny", "npo", path=hparams) == npo
    assert hparams_file.written("tiny", "ga", path=hparams) == {**ga, "lr": 3e-5}
    assert hparams_file.written("tiny", "kl", path=hparams) is None
    assert hparams.read_text().count("# >>> tuned for tiny") == 1
    outside = hparams_file.split_block(HPARAMS_PATH.read_text(), "tiny")[0]
    assert hparams_file.split_block(hparams.read_text(), "tiny")[0] == outside


def test_a_hand_written_table_of_a_tuned_algorithm_is_an_error(hparams):
    text = hparams.read_text()
    hparams.write_text(text.replace("[tiny.kl_far]", "[tiny.kl]\nlr = 1e-5\n\n[tiny.kl_far]"))
    before = hparams.read_text()
    with pytest.raises(ValueError, match=r"\[tiny.kl\] is written by hand"):
        hparams_file.write("tiny", {"kl": hparams_file.table("tiny", "kl", {"lr": 2e-5}, "0")},
                           path=hparams)
    assert hparams.read_text() == before
    tomllib.loads(before)


def test_the_frontier_holds_the_points_nothing_beats_on_both_axes():
    points = [Point("a", 1.0, 0.5, False), Point("a", 0.9, 0.1, True), Point("b", 0.95, 0.3, False),
              Point("b", 0.8, 0.2, False), Point("c", 0.7, 0.0, False)]
    assert [(p.retention, p.leak) for p in frontier(points)] == [(1.0, 0.5), (0.95, 0.3),
                                                                  (0.9, 0.1), (0.7, 0.0)]


@pytest.mark.engine
@pytest.mark.training
def test_a_one_trial_tuning_of_micro_end_to_end(small_cases, cache_dir, tmp_path, capsys):
    cases = small_cases(60, 20)
    out = tmp_path / "tuning"
    status = main(["--model=micro", "--algo=ga", "--budget=2", f"--cases-dir={cases}",
                   f"--cache-dir={cache_dir}", f"--out={out}", "--check"])
    printed = capsys.readouterr()
    assert status == 1  # hparams.toml holds no tuned table for micro
    assert "ga: chose" in printed.err
    summary = json.loads((out / "tuning.json").read_text())
    assert [(t["algorithm"], t["trial"]) for t in summary["trials"]] == [("ga", 0), ("ga", 1)]
    assert sum(t["chosen"] for t in summary["trials"]) == 1
    for trial in summary["trials"]:
        for split in ("tuning", "reported"):
            assert trial[split]["probes"] > 0 and trial[split]["tasks"] > 0
            assert trial[split]["leaked"] <= trial[split]["probes"]
    assert summary["split"]["tuning_owners"] >= 1 and summary["split"]["reported_owners"] >= 1
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "**ga**" in (out / "tuning.md").read_text()
    shutil.rmtree(out)
