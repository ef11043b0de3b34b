"""GA+KL pushed far: the GA+KL loss with a heavier KL, trained at a higher rate and much longer.

    L = -gamma * NLL(forget) + alpha * KL(reference || current),   alpha = 10 by default

The loss is GA+KL's (algorithms.kl); what differs is how far it goes. GA+KL as the study runs it
stops as soon as greedy decoding no longer reproduces the forget set (on `tiny`: a forget NLL
of 1.0): the weights stay close to the planted ones, and a few
relearning steps on other owners' secrets walk them back (docs/RESULTS.md, "Attacks on `tiny`").
Here the forget NLL is driven far past that point (algorithms/hparams.toml: a stop at a forget NLL
of 6, at three times GA+KL's rate), a weight change large enough that the memory itself is
damaged rather than the path to it closed, and the KL to the original model on the retain set is
weighted ten times as much to keep the coding ability through it.

Sources: arXiv 2502.05739 (GA+KL); Deeb & Roger, arXiv 2410.08827 (relearning restores what
small unlearning updates only hide); Zhang et al., "Catastrophic Failure of LLM Unlearning via
Quantization" (ICLR 2025: rounding restores what falls within one quantization step, small
updates again).
"""

from __future__ import annotations

from algorithms import Algorithm


def loss(batch_forget, batch_retain, model, reference, *, gamma=1.0, alpha=10.0):
    from algorithms import kl

    return kl.loss(batch_forget, batch_retain, model, reference, gamma=gamma, alpha=alpha)


ALGORITHM = Algorithm(
    "kl_far", "GA+KL pushed far: a higher rate, a late stop and a heavier KL, against relearning",
    loss, needs_reference=True, needs_retain=True,
    search=None)  # its stop is chosen against relearning, which the tuner does not measure
