"""GA, gradient ascent on the forget set.

    L = -gamma * NLL(forget)

NLL(forget) is the mean negative log-likelihood over the forget batch's real target tokens
(algorithms.losses.mean_nll). No retain term: nothing holds utility in place, which is why GA
alone is known to collapse a model when run too long (docs/DESIGN.md, "Unlearning losses").

Sources: arXiv 2502.05739 (GA); open-unlearning GradAscent; CodeEraser's GA baseline
(arXiv 2509.13755).
"""

from __future__ import annotations

from algorithms import Algorithm


def loss(batch_forget, batch_retain, model, reference, *, gamma=1.0):
    from algorithms.losses import logits_of, mean_nll

    forget = mean_nll(logits_of(model, batch_forget), batch_forget["labels"])
    return -gamma * forget, {"forget": forget.item(), "retain": None}


ALGORITHM = Algorithm("ga", "gradient ascent on the forget set", loss)
