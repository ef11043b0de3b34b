"""NPO, negative preference optimization against the original model, with a retain NLL term.

    d_i   = log p_current(x_i) - log p_reference(x_i)      (log-probs summed over sequence i)
    NPO   = -(2 / beta) * mean_i log sigmoid(-beta * d_i)
    L     = gamma * NPO + alpha * NLL(retain)

Run with alpha > 0 this is "NPO+GD" (open-unlearning's NPO, the way NPO is usually run);
alpha = 0 gives pure NPO. At the start (current == reference) NPO = (2 / beta) * log 2, and its
gradient is that of gradient ascent on the summed (not averaged) sequence NLL; it fades as
current falls below reference, which is what keeps NPO from collapsing as GA does. beta 0.1 by
default. Summing per sequence, as the source does, makes the forget term's scale differ from GA's
token mean: learning rates do not carry across methods unchanged.

Sources: Zhang et al. 2024, "Negative Preference Optimization" (arXiv 2404.05868);
open-unlearning NPO.
"""

from __future__ import annotations

from algorithms import Algorithm


def loss(batch_forget, batch_retain, model, reference, *, gamma=1.0, alpha=1.0, beta=0.1):
    import torch.nn.functional as F

    from algorithms.losses import logits_of, reference_logits, retain_nll_term, sequence_nll

    logits = logits_of(model, batch_forget)
    nll_current, counts = sequence_nll(logits, batch_forget["labels"])
    nll_reference, _ = sequence_nll(reference_logits(reference, batch_forget),
                                    batch_forget["labels"])
    log_ratio = nll_reference - nll_current  # log p_current - log p_reference
    npo = -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()
    retain_term, retain = retain_nll_term(model, batch_retain, alpha)
    forget = (nll_current.sum() / counts.sum()).item()
    return gamma * npo + retain_term, {"forget": forget, "retain": retain, "npo": npo.item()}


ALGORITHM = Algorithm("npo", "negative preference optimization against the original model",
                      loss, needs_reference=True, needs_retain=True,
                      search=("beta", "alpha"))
