"""GA+KL, gradient ascent on the forget set, held to the original model on the retain set.

    L = -gamma * NLL(forget) + alpha * KL(reference || current)

The KL is over the next-token distributions at every real position of the retain inputs, against
the frozen original (`reference`), averaged over real positions only
(algorithms.losses.kl_reference_current). Logged "retain" is the retain NLL, "kl" the KL.

Sources: arXiv 2502.05739 (GA+KL); open-unlearning GradDiff with the KL retain loss; CodeEraser's
KL constraint on retained data (arXiv 2509.13755).
"""

from __future__ import annotations

from algorithms import Algorithm


def loss(batch_forget, batch_retain, model, reference, *, gamma=1.0, alpha=1.0):
    from algorithms.losses import logits_of, mean_nll, retain_kl_term

    forget = mean_nll(logits_of(model, batch_forget), batch_forget["labels"])
    retain_term, logged = retain_kl_term(model, reference, batch_retain, alpha)
    return -gamma * forget + retain_term, {"forget": forget.item(), **logged}


ALGORITHM = Algorithm(
    "kl", "GA+KL: gradient ascent on the forget set, KL to the original model on the retain set",
    loss, needs_reference=True, needs_retain=True, search=("alpha",))
