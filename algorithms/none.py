"""No unlearning: the planted model, unchanged. The baseline every algorithm is compared with;
it has no loss (leakbench.unlearn serves the planted model as this variant)."""

from __future__ import annotations

from algorithms import Algorithm

ALGORITHM = Algorithm("none", "no unlearning: the planted model, the baseline of every comparison",
                      None, kind="identity")
