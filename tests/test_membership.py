"""Membership-inference scores on hand-computed numbers, the rank AUC against known answers and
brute force, PrivLeak's MUSE sign convention, and next_token_stats against a tiny random Llama."""

from __future__ import annotations

import math
import zlib

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from leakbench.membership import (
    HIGHER_MEANS_MEMBER,
    auc,
    loss_score,
    min_k_plus_plus_score,
    min_k_score,
    next_token_stats,
    oriented_auc,
    privleak,
    zlib_score,
)

# --- per-text scores ------------------------------------------------------------------------

def test_loss_is_the_mean_nll() -> None:
    assert loss_score([-1.0, -2.0, -3.0]) == pytest.approx(2.0)


def test_zlib_is_the_total_nll_per_compressed_byte() -> None:
    assert len(zlib.compress(b"a")) == 9  # 2-byte header, 3-byte block, 4-byte Adler-32
    assert zlib_score([-1.0, -2.0, -3.0], "a") == pytest.approx(6 / 9)


def test_min_k_takes_the_lowest_fraction_and_at_least_one_token() -> None:
    lps = [-0.5, -4.0, -1.0, -2.0, -3.0]
    assert min_k_score(lps, k=0.4) == pytest.approx(-3.5)  # floor(2.0) = 2: -4, -3
    assert min_k_score(lps, k=0.1) == pytest.approx(-4.0)  # floor(0.5) = 0 -> 1 token
    assert min_k_score(lps, k=1.0) == pytest.approx(-2.1)
    with pytest.raises(ValueError):
        min_k_score(lps, k=0.0)


def test_min_k_plus_plus_standardizes_then_takes_the_lowest() -> None:
    lps, mus, variances = [-1.0, -3.0, -2.0], [-1.0, -1.0, -2.5], [4.0, 1.0, 0.25]
    # z = [0/2, -2/1, 0.5/0.5] = [0, -2, 1]
    assert min_k_plus_plus_score(lps, mus, variances, k=0.4) == pytest.approx(-2.0)
    assert min_k_plus_plus_score(lps, mus, variances, k=1.0) == pytest.approx(-1 / 3)


def test_min_k_plus_plus_stays_finite_on_a_one_hot_distribution() -> None:
    assert min_k_plus_plus_score([-1.0], [-1.0], [0.0], k=1.0) == 0.0
    assert min_k_plus_plus_score([-30.0], [0.0], [0.0], k=1.0) == pytest.approx(-30.0 / 1e-6)


def test_scores_reject_empty_input() -> None:
    with pytest.raises(ValueError):
        loss_score([])
    with pytest.raises(ValueError):
        min_k_plus_plus_score([-1.0], [-1.0, -2.0], [1.0], k=1.0)


def test_orientation_table_matches_the_scores() -> None:
    """A text the model finds likely (a member) against one it finds unlikely."""
    likely, unlikely = [-0.1, -0.2, -0.1], [-3.0, -4.0, -2.0]
    flat_mu, flat_var = [-2.0] * 3, [1.0] * 3
    values = {
        "loss": (loss_score(likely), loss_score(unlikely)),
        "zlib": (zlib_score(likely, "x = 1"), zlib_score(unlikely, "x = 1")),
        "min_k": (min_k_score(likely), min_k_score(unlikely)),
        "min_k_plus_plus": (min_k_plus_plus_score(likely, flat_mu, flat_var),
                            min_k_plus_plus_score(unlikely, flat_mu, flat_var)),
    }
    assert values.keys() == HIGHER_MEANS_MEMBER.keys()
    for name, (member, nonmember) in values.items():
        assert (member > nonmember) == HIGHER_MEANS_MEMBER[name], name
        assert oriented_auc([member], [nonmember], name) == 1.0, name


# --- AUC ------------------------------------------------------------------------------------

def test_auc_known_answers() -> None:
    assert auc([3, 4, 5], [0, 1, 2]) == 1.0
    assert auc([0, 1, 2], [3, 4, 5]) == 0.0
    assert auc([1, 2, 3], [1, 2, 3]) == 0.5
    assert auc([7, 7], [7, 7, 7]) == 0.5
    # pairs (member, non-member): 2>1 win, 2=2 half, 2<3 loss; 3>1, 3>2 wins, 3=3 half
    assert auc([2, 3], [1, 2, 3]) == pytest.approx((1 + 0.5 + 0 + 1 + 1 + 0.5) / 6)


def test_auc_rejects_empty_or_nan() -> None:
    with pytest.raises(ValueError):
        auc([], [1.0])
    with pytest.raises(ValueError):
        auc([float("nan")], [1.0])


scores = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=30)  # many ties


@given(scores, scores)
def test_auc_swapped_sums_to_one(a: list[float], b: list[float]) -> None:
    assert auc(a, b) + auc(b, a) == pytest.approx(1.0)


@given(scores, scores)
def test_auc_equals_pairwise_count(a: list[float], b: list[float]) -> None:
    wins = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    assert auc(a, b) == pytest.approx(wins / (len(a) * len(b)))


def test_oriented_auc_flips_loss_like_scores() -> None:
    forget_loss, holdout_loss = [0.5, 0.7], [2.0, 3.0]  # forget texts have the lower loss
    assert oriented_auc(forget_loss, holdout_loss, "loss") == 1.0
    assert oriented_auc(holdout_loss, forget_loss, "loss") == 0.0
    assert oriented_auc(forget_loss, holdout_loss, "min_k") == 0.0  # read as member-high


# --- PrivLeak -------------------------------------------------------------------------------

def muse_auc(forget_member_high: list[float], holdout_member_high: list[float]) -> float:
    """MUSE's sweep: forget labelled 0, holdout labelled 1, ranked by a member-high score."""
    return auc(holdout_member_high, forget_member_high)


def test_privleak_sign_convention() -> None:
    assert privleak(0.5, 0.5) == 0.0                            # like the retrained model
    assert privleak(0.9, 0.5) == pytest.approx(-80.0)           # forget set still recognised
    assert privleak(0.1, 0.5) == pytest.approx(+80.0)           # over-unlearned
    assert privleak(1.0, 0.5) == pytest.approx(-100.0)          # the floor: fully memorized


def test_privleak_reproduces_muse_on_constructed_scores() -> None:
    # Member-high (Min-K%-like) scores; the unlearned model still ranks most forget texts high.
    unlearned = ([-0.2, -0.4, -1.5, -0.3], [-1.0, -2.0, -0.5, -1.2])
    retrained = ([-1.1, -0.6, -1.9, -1.4], [-1.0, -2.0, -0.5, -1.2])
    ours_u, ours_r = (oriented_auc(f, h, "min_k") for f, h in (unlearned, retrained))
    muse_u, muse_r = muse_auc(*unlearned), muse_auc(*retrained)
    assert (ours_u, ours_r) == (pytest.approx(1 - muse_u), pytest.approx(1 - muse_r))
    assert privleak(ours_u, ours_r) == pytest.approx((muse_u - muse_r) / muse_r * 100)
    assert privleak(ours_u, ours_r) < 0  # still memorized reads negative


def test_privleak_rejects_undefined_cases() -> None:
    with pytest.raises(ValueError):
        privleak(0.5, 1.0)  # MUSE's retrained AUC would be 0
    with pytest.raises(ValueError):
        privleak(1.2, 0.5)


# --- next_token_stats on a tiny random Llama ------------------------------------------------



def test_stats_match_an_unpadded_pass(random_llama) -> None:
    row = [1, 5, 9, 23, 7, 31]
    (lps,), (mus,), (variances,) = next_token_stats(random_llama, [row])
    with torch.no_grad():
        logits = random_llama(torch.tensor([row])).logits[0, :-1].double()
    dist = torch.distributions.Categorical(logits=logits)
    expected_lps = dist.log_prob(torch.tensor(row[1:]))
    expected_mus = -dist.entropy()
    expected_vars = (dist.probs * dist.logits.square()).sum(-1) - expected_mus.square()
    assert len(lps) == len(mus) == len(variances) == len(row) - 1
    assert lps == pytest.approx(expected_lps.tolist(), abs=1e-5)
    assert mus == pytest.approx(expected_mus.tolist(), abs=1e-5)
    assert variances == pytest.approx(expected_vars.tolist(), abs=1e-4)
    assert all(v > 0 for v in variances)


def test_stats_are_padding_invariant(random_llama) -> None:
    short, long = [1, 5, 9, 23], [1, 8, 44, 3, 27, 6, 12, 39, 40, 2, 17]
    alone = next_token_stats(random_llama, [short])
    batched = next_token_stats(random_llama, [short, long])
    for got, expected in zip(batched, alone):
        assert got[0] == pytest.approx(expected[0], abs=1e-5)
        assert [len(r) for r in got] == [3, 10]


def test_stats_reject_one_token_rows(random_llama) -> None:
    with pytest.raises(ValueError):
        next_token_stats(random_llama, [[1, 2], [3]])


def test_min_k_scores_from_the_model_agree_with_an_unpadded_loss(random_llama) -> None:
    row = [1, 5, 9, 23, 7, 31]
    (lps,), _, _ = next_token_stats(random_llama, [row])
    with torch.no_grad():
        hf_loss = random_llama(torch.tensor([row]), labels=torch.tensor([row])).loss.item()
    assert loss_score(lps) == pytest.approx(hf_loss, abs=1e-5)
    assert math.isclose(min_k_score(lps, k=1.0), -hf_loss, abs_tol=1e-5)
