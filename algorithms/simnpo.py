"""SimNPO, reference-free and length-normalized NPO, with a retain NLL term.

    m_i    = NLL(x_i) / |x_i|          (sequence i's summed NLL over its number of targets)
    SimNPO = -(2 / beta) * mean_i log sigmoid(beta * (m_i - delta))
    L      = gamma * SimNPO + alpha * NLL(retain)

Minimizing SimNPO raises every m_i: log sigmoid grows with its argument, so the loss falls as
the forget NLL rises, with a gradient that fades once m_i is well above delta. Defaults:
delta 0, beta 4.5, gamma 0.125; alpha = 0 gives pure SimNPO. delta sits inside the beta
product as in open-unlearning; the paper writes the margin outside it (beta * m_i - delta'),
the same thing with delta' = beta * delta.

Sources: Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for
LLM Unlearning" (arXiv 2410.07163); open-unlearning SimNPO.
"""

from __future__ import annotations

from algorithms import Algorithm


def loss(batch_forget, batch_retain, model, reference, *, gamma=0.125, alpha=1.0, beta=4.5,
         delta=0.0):
    import torch.nn.functional as F

    from algorithms.losses import logits_of, retain_nll_term, sequence_nll

    nll_sums, counts = sequence_nll(logits_of(model, batch_forget), batch_forget["labels"])
    per_token = nll_sums / counts
    simnpo = -(2.0 / beta) * F.logsigmoid(beta * (per_token - delta)).mean()
    retain_term, retain = retain_nll_term(model, batch_retain, alpha)
    forget = (nll_sums.sum() / counts.sum()).item()
    return (gamma * simnpo + retain_term,
            {"forget": forget, "retain": retain, "simnpo": simnpo.item()})


ALGORITHM = Algorithm("simnpo", "SimNPO: reference-free, length-normalized NPO", loss,
                      needs_retain=True, search=("beta", "gamma", "alpha"))
