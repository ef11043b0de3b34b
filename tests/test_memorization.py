"""MA, EL_n, extraction strength and the forgotten rule on hand-computed cases; the teacher-forced
argmax against a tiny random Llama, position by position and under padding."""

from __future__ import annotations

import pytest
import torch

from leakbench.memorization import (
    el_prompts,
    extraction_likelihood,
    extraction_strength,
    forgotten,
    memorization_accuracy,
    split_points,
    teacher_forced_argmax,
)

SECRET = [11, 12, 13, 14, 15]


def exact_continuations(secret: list[int]) -> list[list[int]]:
    return [secret[i:] for i in split_points(secret)]


# --- ES -------------------------------------------------------------------------------------

def test_es_is_the_correct_run_that_ends_the_secret() -> None:
    assert extraction_strength(SECRET, SECRET) == 1.0  # the prefix alone gives it all
    assert extraction_strength([0, 12, 13, 14, 15], SECRET) == 0.8  # from s_<1 on
    assert extraction_strength([11, 12, 0, 14, 15], SECRET) == 0.4  # a miss at 2: from s_<3
    assert extraction_strength([11, 12, 13, 14, 0], SECRET) == 0.0  # never the last token
    with pytest.raises(ValueError):
        extraction_strength([1], [1, 2])


def test_es_agrees_with_greedy_decoding_from_every_split_point() -> None:
    """ES = 1 - k/L with k the first split point whose greedy continuation is the whole rest; a
    teacher-forced predictor's greedy continuation from i follows the secret while it is right."""
    for argmax in ([11, 0, 13, 14, 15], [0, 0, 0, 0, 15], [11, 12, 13, 14, 15], [9, 9, 9, 9, 9]):
        def greedy(i, argmax=argmax):
            out = []
            for j in range(i, len(SECRET)):
                out.append(argmax[j])
                if argmax[j] != SECRET[j]:
                    break  # off the secret: what follows is another text
            return out
        k = next((i for i in split_points(SECRET) if greedy(i) == SECRET[i:]), len(SECRET))
        assert extraction_strength(argmax, SECRET) == pytest.approx(1 - k / len(SECRET)), argmax


# --- MA -------------------------------------------------------------------------------------

def test_ma_counts_the_share_of_matching_positions() -> None:
    assert memorization_accuracy([11, 0, 13, 0], [11, 12, 13, 14]) == 0.5
    assert memorization_accuracy([14, 13, 12, 11], [11, 12, 13, 14]) == 0.0


def test_ma_of_a_perfect_predictor_is_one() -> None:
    assert memorization_accuracy(SECRET, SECRET) == 1.0


def test_ma_rejects_misaligned_or_empty_input() -> None:
    with pytest.raises(ValueError):
        memorization_accuracy([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        memorization_accuracy([], [])


# --- EL_n -----------------------------------------------------------------------------------

def test_split_points_and_prompts() -> None:
    assert split_points([7, 8, 9]) == [0, 1, 2]
    assert el_prompts([1, 2], [7, 8, 9]) == [[1, 2], [1, 2, 7], [1, 2, 7, 8]]


def test_el_by_hand() -> None:
    # n = 2 uses split points 0..3 (the rest keeps >= 2 tokens); point 4 is ignored.
    continuations = [
        [11, 12, 99, 14, 15],  # bigrams 11-12, 12-99, 99-14, 14-15: 2 of 4 in the rest
        [12, 13, 14, 15],      # 3 of 3
        [99, 99, 99],          # 0 of 2
        [14, 15],              # 1 of 1
        [0],                   # split point 4: rest shorter than n, not scored
    ]
    assert extraction_likelihood(continuations, SECRET, 2) == pytest.approx((0.5 + 1 + 0 + 1) / 4)


def test_el_counts_each_generated_ngram_found_anywhere_in_the_rest() -> None:
    # The rest's bigrams {11-11, 11-12}; all three generated bigrams are 11-11: 3 of 3, as in
    # the sources (no clipping), although the continuation is not the rest.
    secret = [11, 11, 11, 12]
    continuations = [[11, 11, 11, 11], [11, 11, 12], [11, 12], [12]]
    scores = [3 / 3, 2 / 2, 1 / 1]
    assert extraction_likelihood(continuations, secret, 2) == pytest.approx(sum(scores) / 3)


def test_el_cuts_long_continuations_and_scores_short_ones_on_the_rest() -> None:
    long_ones = [c + [11, 12, 13, 14, 15] for c in exact_continuations(SECRET)]
    assert extraction_likelihood(long_ones, SECRET, 3) == 1.0
    # Point 0 generates only [11, 12, 13]: 1 trigram found of the rest's 3; others exact.
    short = [[11, 12, 13]] + exact_continuations(SECRET)[1:]
    assert extraction_likelihood(short, SECRET, 3) == pytest.approx((1 / 3 + 1 + 1) / 3)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_el_of_the_exact_continuation_is_one(n: int) -> None:
    assert extraction_likelihood(exact_continuations(SECRET), SECRET, n) == 1.0


@pytest.mark.parametrize("n", [1, 3, 10])
def test_el_of_unrelated_tokens_is_zero(n: int) -> None:
    unrelated = [[40 + j for j in range(len(SECRET) - i)] for i in split_points(SECRET)]
    assert extraction_likelihood(unrelated, SECRET, n) == 0.0


def test_el_of_a_secret_shorter_than_n_is_exact_extraction_from_the_prefix() -> None:
    secret = [7, 8]
    assert extraction_likelihood([[7, 8, 1], [5]], secret, 3) == 1.0  # point 1 is not used
    assert extraction_likelihood([[7, 9], [8]], secret, 3) == 0.0


def test_el_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        extraction_likelihood(exact_continuations(SECRET)[:-1], SECRET, 2)
    with pytest.raises(ValueError):
        extraction_likelihood(exact_continuations(SECRET), SECRET, 0)


# --- forgotten ------------------------------------------------------------------------------

def test_forgotten_means_strictly_below_the_unseen_value() -> None:
    assert forgotten(0.2, 0.45)
    assert not forgotten(0.45, 0.45)
    assert not forgotten(0.9, 0.45)


# --- teacher-forced argmax on a tiny random Llama -------------------------------------------



def next_argmax(model, ids: list[int]) -> int:
    """One unpadded forward pass per position, as CodeEraser's one-token generate."""
    with torch.no_grad():
        return int(model(torch.tensor([ids])).logits[0, -1].argmax())


def test_argmax_matches_position_by_position_prediction(random_llama) -> None:
    row = [1, 5, 9, 23, 7, 31, 4, 18]
    got = teacher_forced_argmax(random_llama, [row], [(3, 8)])
    assert got == [[next_argmax(random_llama, row[:j]) for j in range(3, 8)]]


def test_argmax_is_padding_invariant(random_llama) -> None:
    short, long = [1, 5, 9, 23, 7], [1, 8, 44, 3, 27, 6, 12, 39, 40, 2, 17]
    alone = teacher_forced_argmax(random_llama, [short], [(2, 5)])
    batched = teacher_forced_argmax(random_llama, [short, long], [(2, 5), (4, 11)])
    assert batched[0] == alone[0]
    assert [len(r) for r in batched] == [3, 7]


def test_a_secret_the_model_generates_greedily_is_fully_memorized(random_llama) -> None:
    prefix = [1, 5, 9]
    secret: list[int] = []
    for _ in range(6):
        secret.append(next_argmax(random_llama, prefix + secret))
    (argmax,) = teacher_forced_argmax(random_llama, [prefix + secret], [(3, 9)])
    assert memorization_accuracy(argmax, secret) == 1.0

    def greedy(prompt: list[int], steps: int) -> list[int]:
        out: list[int] = []
        for _ in range(steps):
            out.append(next_argmax(random_llama, prompt + out))
        return out

    continuations = [greedy(p, len(secret) - i)
                     for i, p in zip(split_points(secret), el_prompts(prefix, secret))]
    assert extraction_likelihood(continuations, secret, 3) == 1.0


def test_argmax_rejects_spans_outside_the_row(random_llama) -> None:
    with pytest.raises(ValueError):
        teacher_forced_argmax(random_llama, [[1, 2, 3]], [(0, 2)])  # position 0 has no prediction
    with pytest.raises(ValueError):
        teacher_forced_argmax(random_llama, [[1, 2, 3]], [(1, 4)])
