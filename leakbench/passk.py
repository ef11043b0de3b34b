"""The unbiased pass@k estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained
on Code", section 2.1): the probability that at least one of k samples, drawn without replacement
from n generated samples of which c are correct, is correct.

    pass@k = 1 - C(n - c, k) / C(n, k)

The ratio of binomials is written as the product of (1 - k / i) for i from n - c + 1 to n, which
stays within floating point range where the binomials themselves overflow.
"""

from __future__ import annotations

import math


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k for one problem with ``n`` samples of which ``c`` are correct."""
    if not 0 <= c <= n:
        raise ValueError(f"c must satisfy 0 <= c <= n (n={n}), got c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must satisfy 1 <= k <= n (n={n}), got k={k}")
    if n - c < k:
        return 1.0  # every draw of k samples contains a correct one
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
