"""GA+GD, gradient ascent on the forget set and gradient descent on the retain set.

    L = -gamma * NLL(forget) + alpha * NLL(retain)

Both NLLs are token means over the real targets of their batch (algorithms.losses.mean_nll).

Sources: arXiv 2502.05739 (GA+GD); open-unlearning GradDiff with the NLL retain loss.
"""

from __future__ import annotations

from algorithms import Algorithm


def loss(batch_forget, batch_retain, model, reference, *, gamma=1.0, alpha=1.0):
    from algorithms.losses import logits_of, mean_nll, retain_nll_term

    forget = mean_nll(logits_of(model, batch_forget), batch_forget["labels"])
    retain_term, retain = retain_nll_term(model, batch_retain, alpha)
    return -gamma * forget + retain_term, {"forget": forget.item(), "retain": retain}


ALGORITHM = Algorithm(
    "gd", "GA+GD: gradient ascent on the forget set, gradient descent on the retain set", loss,
    needs_retain=True, search=("alpha",))
