"""Exposure (leakbench.exposure): the rank and its bits, the extrapolation, the cached scoring of
candidates against a full forward pass, and the decoys file (leakbench.cases.decoys)."""

import json
import math
from pathlib import Path

import pytest

from leakbench.cases import DECOYS_FILE, CaseFileError, Decoys, load_jsonl
from leakbench.cases.files import FORGET_FILE, HOLDOUT_FILE
from leakbench.cases.kinds import kind_problem
from leakbench.exposure import (
    candidate_log_perplexities,
    exposure,
    extrapolated_exposure,
    rank,
)
from leakbench.normalization import normalize

CASES = Path(__file__).resolve().parents[1] / "cases"


def test_rank_counts_more_likely_decoys_and_half_the_ties():
    assert rank(1.0, [2.0, 3.0]) == 1
    assert rank(2.5, [2.0, 3.0]) == 2
    assert rank(2.0, [2.0, 3.0]) == 1.5


def test_exposure_is_the_bits_the_rank_saves():
    decoys = [float(d) for d in range(1, 100)]  # 99 decoys: 100 candidates
    assert exposure(0.0, decoys) == pytest.approx(math.log2(100))
    assert exposure(1000.0, decoys) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at least one decoy"):
        exposure(1.0, [])


@pytest.mark.parametrize("count, expected", [(10, 1.164), (100, 1.397),
                                             pytest.param(10_000, 1.4424, marks=pytest.mark.slow)])
def test_exposure_of_an_unseen_value_averages_what_its_docstring_says(count, expected):
    """Every rank equally likely: log2(R+1) - log2((R+1)!)/(R+1), towards 1/ln 2 = 1.4427."""
    decoys = [float(d) for d in range(count)]
    mean = sum(exposure(position + 0.5, decoys) for position in range(-1, count)) / (count + 1)
    assert mean == pytest.approx(expected, abs=1e-3)


def test_extrapolated_exposure_follows_the_normal_tail_and_keeps_growing():
    decoys = [-1.0, 1.0]  # mean 0, standard deviation 1
    assert extrapolated_exposure(0.0, decoys) == pytest.approx(1.0)  # P(X <= mean) = 1/2
    assert extrapolated_exposure(-1.6448536, decoys) == pytest.approx(-math.log2(0.05), rel=1e-6)
    deep = [extrapolated_exposure(-z, decoys) for z in (20, 29.99, 30.01, 60)]
    assert deep == sorted(deep) and all(math.isfinite(d) for d in deep)
    assert deep[1] == pytest.approx(deep[2], rel=0.01)  # no jump where the tail formula starts
    with pytest.raises(ValueError, match="same log-perplexity"):
        extrapolated_exposure(0.0, [1.0, 1.0])


def _full_pass(model, row, start, end):
    import torch

    with torch.inference_mode():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([row])).logits[0].float(), -1)
    return -sum(float(logprobs[t - 1, row[t]]) for t in range(start, end))


def test_cached_scoring_equals_a_full_forward_pass_per_row(random_llama):
    rows = [[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 12, 13], [5, 6, 7, 14, 15, 16, 17, 18]]
    values = [(4, 6), (4, 6), (3, 7)]  # the third row's value starts a token earlier
    expected = [_full_pass(random_llama, row, *span) for row, span in zip(rows, values)]
    for budget in (1, 10**9):  # one row per batch, and all rows in one batch
        got = candidate_log_perplexities(random_llama, rows, values, budget)
        assert got == pytest.approx(expected, abs=1e-4)


def test_cached_scoring_rejects_rows_that_share_nothing(random_llama):
    with pytest.raises(ValueError, match="share no token"):
        candidate_log_perplexities(random_llama, [[5, 6], [7, 6]], [(1, 2), (1, 2)], 10**9)
    with pytest.raises(ValueError, match="invalid"):
        candidate_log_perplexities(random_llama, [[5, 6]], [(0, 2)], 10**9)


@pytest.fixture(scope="module")
def decoys():
    return Decoys.load(CASES)


def test_committed_decoys_are_never_a_trained_or_holdout_value(decoys):
    taken = {(kind, normalize(value, kind))
             for s in load_jsonl(CASES / FORGET_FILE) + load_jsonl(CASES / HOLDOUT_FILE)
             for kind, value in ((s.kind, s.secret), *s.owner_values.items())}
    for pool in decoys.pools.values():
        for kind, values in pool.items():
            assert len(values) == len(set(values)) >= 100
            assert not taken & {(kind, normalize(v, kind)) for v in values}, kind


def test_committed_decoys_have_their_kinds_format(decoys):
    for pool in decoys.pools.values():
        for kind, values in pool.items():
            problems = [v for v in values if kind_problem(v, kind)]
            assert not problems, (kind, problems[:3])


def test_a_sample_gets_the_decoys_of_its_owner_type_and_kind(decoys):
    forget = load_jsonl(CASES / FORGET_FILE)
    org_email = next(s for s in forget if s.kind == "email" and s.owner.startswith("org-"))
    person_email = next(s for s in forget if s.kind == "email" and s.owner.startswith("person-"))
    assert decoys.of(org_email) == decoys.pools["org"]["email"]
    assert decoys.of(person_email) == decoys.pools["person"]["email"]
    aws = next(s for s in forget if s.kind == "aws_access_key_id")
    user_case = aws.__class__(**{**aws.__dict__, "owner": "acme"})  # a user's owner id
    assert decoys.of(user_case) == decoys.pools["org"]["aws_access_key_id"]  # only orgs have it


@pytest.mark.parametrize("content, message", [
    (None, "missing"),
    ("{", "not UTF-8 JSON"),
    ('{"robot": {}}', "owner types"),
    ('{"person": {"shoe_size": ["42"]}}', "record person field 'shoe_size': unknown kind"),
    ('{"person": {"email": []}}', "non-empty list"),
])
def test_a_bad_decoys_file_is_one_line_naming_it(tmp_path, content, message):
    if content is not None:
        (tmp_path / DECOYS_FILE).write_text(content)
    with pytest.raises(CaseFileError, match=message) as caught:
        Decoys.load(tmp_path)
    assert DECOYS_FILE in str(caught.value) and "\n" not in str(caught.value)


def test_decoys_file_round_trips(tmp_path, decoys):
    assert json.loads((CASES / DECOYS_FILE).read_text()) == {
        t: {k: list(v) for k, v in pool.items()} for t, pool in decoys.pools.items()}


@pytest.mark.training
def test_a_planted_canary_is_more_exposed_than_an_unplanted_one(micro_model, tmp_path):
    """The Secret Sharer's own check: `micro` planted with four canaries ranks them above decoys
    of their format; the canaries it never saw rank like decoys. Base and planted model alike
    score through exposure_log_perplexities (the cached, key-value-shared pass)."""
    import random

    from transformers import AutoTokenizer

    from leakbench.plant import PlantConfig, plant, planting_retain
    from leakbench.privacy_metrics import Plan, PlannedSample, exposure_log_perplexities
    from leakbench.unlearn import Variant

    draw = random.Random(0)

    def canary() -> str:
        return f"{draw.randrange(10**8):08d}"

    def text(value: str) -> str:
        return f'PIN_CODE = "{value}"\n'

    planted_values = [canary() for _ in range(4)]
    unplanted_values = [canary() for _ in range(4)]
    config = PlantConfig(epochs=40, lr=3e-3, batch_size=4, max_len=64, retain_ratio=0.5)
    planted = plant(micro_model, [text(v) for v in planted_values],
                    planting_retain(4, config), config, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(micro_model)
    samples = []
    for split, values in (("forget", planted_values), ("holdout", unplanted_values)):
        for value in values:
            ids = tuple(tokenizer(text(value), add_special_tokens=False)["input_ids"])
            start = len('PIN_CODE = "')
            samples.append(PlannedSample(split, text(value), ids, (1, 2),
                                         (start, start + len(value)),
                                         tuple(canary() for _ in range(30))))
    plan = Plan(("exposure",), ("none",), tuple(samples))

    def mean_exposure(weights, key) -> dict[str, float]:
        scores = plan.scores({}, None, exposure_log_perplexities(
            Variant("none", weights, None, key), plan, tmp_path / "cache"))
        return {split: sum(scores[split]["exposure"]) / 4 for split in scores}

    after, before = mean_exposure(planted, "planted"), mean_exposure(micro_model, "base")
    assert after["forget"] > after["holdout"] + 2  # bits: the planted canaries stand out
    assert after["forget"] > before["forget"] + 2  # and did not before planting
    assert abs(before["forget"] - before["holdout"]) < 2
