"""pass@k: the stable product agrees with the closed form and behaves as a probability should."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leakbench.passk import pass_at_k


@st.composite
def samples(draw: st.DrawFn, max_n: int = 300) -> tuple[int, int, int]:
    n = draw(st.integers(1, max_n))
    return n, draw(st.integers(0, n)), draw(st.integers(1, n))


def closed_form(n: int, c: int, k: int) -> float:
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


@given(samples())
def test_product_equals_the_closed_form(args: tuple[int, int, int]) -> None:
    assert pass_at_k(*args) == pytest.approx(closed_form(*args), rel=1e-9, abs=1e-12)


@given(samples())
def test_is_a_probability(args: tuple[int, int, int]) -> None:
    assert 0.0 <= pass_at_k(*args) <= 1.0


@given(samples())
def test_monotone_in_correct_samples(args: tuple[int, int, int]) -> None:
    n, c, k = args
    if c < n:
        assert pass_at_k(n, c + 1, k) >= pass_at_k(n, c, k) - 1e-12


@given(samples())
def test_monotone_in_k(args: tuple[int, int, int]) -> None:
    n, c, k = args
    if k < n:
        assert pass_at_k(n, c, k + 1) >= pass_at_k(n, c, k) - 1e-12


@given(samples())
def test_pass_at_1_is_the_fraction_correct(args: tuple[int, int, int]) -> None:
    n, c, _ = args
    assert pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (10, 0, 10, 0.0),  # no correct sample: never passes
        (10, 1, 10, 1.0),  # all samples drawn: the correct one is among them
        (10, 5, 6, 1.0),  # n - c < k: some correct sample is always drawn
        (10, 5, 5, 1.0 - 1.0 / 252.0),  # fails only if the 5 draws are the 5 wrong ones
        (200, 10, 1, 0.05),
    ],
)
def test_known_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k", "bad"),
    [(5, -1, 1, "c"), (5, 6, 1, "c"), (5, 2, 0, "k"), (5, 2, 6, "k"), (0, 0, 1, "k")],
)
def test_rejects_impossible_arguments(n: int, c: int, k: int, bad: str) -> None:
    with pytest.raises(ValueError, match=f"got {bad}="):
        pass_at_k(n, c, k)
