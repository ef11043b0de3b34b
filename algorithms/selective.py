"""Selective unlearning (CodeEraser): ascent on the secret's tokens, descent on their context.

    L = -gamma * NLL(secret targets of forget)
        + context_weight * NLL(other targets of forget)
        + alpha * KL(reference || current) on retain inputs

A target is "secret" when its token has secret_mask = 1 (algorithms.batches.encode_forget);
both NLLs are token means over the forget batch's real targets. The context term keeps the code
around the secret (which the model should still complete) from being unlearned with it. The
logged "forget" is the secret NLL: the quantity this algorithm ascends on, and the one the
loop's early stop reads. A forget batch with no context target (a text that is all secret)
contributes no context term.

Left out from CodeEraser's code: its extra term pushing the secret positions' distributions
away from the original model's (a -KL on the forget batch); its alternation of forget and retain
steps (here both terms are in every step).

Sources: Chu et al., "Scrub It Out! Erasing Sensitive Memorization in Code Language Models via
Machine Unlearning" (ICSE 2026, arXiv 2509.13755), CodeEraser (CGCL-codes/naturalcc,
examples/code-unlearning), where context_weight is called select_gamma.
"""

from __future__ import annotations

from algorithms import Algorithm


def loss(batch_forget, batch_retain, model, reference, *, gamma=1.0, alpha=1.0,
         context_weight=1.0):
    from algorithms.losses import logits_of, masked_mean, nll, retain_kl_term

    values, targets = nll(logits_of(model, batch_forget), batch_forget["labels"])
    secret = targets & batch_forget["secret_mask"][:, 1:].bool()
    context = targets & ~secret
    secret_nll = masked_mean(values, secret, "secret target token (is secret_mask set?)")
    total = -gamma * secret_nll
    logged = {"forget": secret_nll.item()}
    if context.any():
        context_nll = masked_mean(values, context, "context target token")
        total = total + context_weight * context_nll
        logged["context"] = context_nll.item()
    retain_term, retained = retain_kl_term(model, reference, batch_retain, alpha)
    return total + retain_term, {**logged, **retained}


ALGORITHM = Algorithm(
    "selective", "ascent on the secret's tokens only, descent on their context, KL on retain data",
    loss, needs_reference=True, needs_retain=True,
    search=("context_weight", "alpha"))
