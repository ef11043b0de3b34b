"""The validation split: tuning owners and tasks never reported, the split stable across runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from leakbench import validation
from leakbench.cases import load_jsonl
from leakbench.plant import plant_config
from leakbench.probes import PrivacyData, functional_tasks

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"


def test_tuning_and_reported_owners_are_disjoint_and_cover_the_planted_set():
    data = PrivacyData.load(CASES, plant_config("tiny").forget_samples)
    tuning = {s.owner for s in data.tuning}
    reported = {s.owner for s in data.reported}
    assert tuning and reported
    assert not tuning & reported
    assert tuning | reported == {s.owner for s in data.forget}
    assert len(data.tuning) + len(data.reported) == len(data.forget)


def test_no_reported_probe_or_per_secret_score_is_of_a_tuning_owner():
    data = PrivacyData.load(CASES, plant_config("tiny").forget_samples)
    assert data.tuning_owners
    assert not {p.sample.owner for p in data.leak_probes("forget")} & data.tuning_owners
    assert {p.sample.owner for p in data.leak_probes("tuning")} == set(data.tuning_owners)
    assert data.measured("forget") == data.reported


def test_an_owner_is_on_the_same_side_whatever_the_run_plants():
    everything = load_jsonl(CASES / "forget.jsonl")
    thinned = PrivacyData.load(CASES, plant_config("tiny").forget_samples)
    assert thinned.tuning_owners == validation.tuning_owners(everything) & {
        s.owner for s in thinned.forget}
    first = everything[:200]
    assert validation.tuning_owners(first) == validation.tuning_owners(everything) & {
        s.owner for s in first}


def test_the_users_case_files_are_always_reported():
    """cases/repeated/ is a user case file beside an empty generated forget set: some of its
    owners would be tuning owners if they were generated, none is."""
    data = PrivacyData.load(CASES / "repeated", plant_config("tiny").forget_samples)
    assert validation.tuning_owners(data.forget)
    assert not data.tuning_owners
    assert data.reported == data.forget


def test_capability_tasks_are_split_by_family_and_constant():
    tuning = [t for t in functional_tasks("tuning") if t.source == "capability"]
    reported = [t for t in functional_tasks("reported") if t.source == "capability"]
    assert tuning and reported
    pattern = {t.test_id.rsplit("-", 2)[0] for t in tuning}
    assert not pattern & {t.test_id.rsplit("-", 2)[0] for t in reported}
    humaneval = {t.test_id for t in functional_tasks("tuning") if t.source == "humaneval"}
    assert humaneval and not humaneval & {t.test_id for t in functional_tasks("reported")}


@pytest.mark.slow
def test_the_benchmark_collects_only_the_reported_part():
    data = PrivacyData.load(CASES, plant_config("micro").forget_samples)
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmark", "--model=micro", "--algo=none",
         "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    subjects = {re.split(r"[/\]]", test.split("[", 1)[1])[0]
                for test in collected.splitlines() if "[" in test}
    assert {s.id for s in data.reported} <= {subject.removeprefix("none-") for subject in subjects}
    for tuning in [*(s.id for s in data.tuning), *(t.test_id for t in functional_tasks("tuning"))]:
        assert not any(subject.endswith(f"-{tuning}") for subject in subjects), tuning
