"""The loss pieces every algorithm is built from, each ignoring padding exactly.

Targets: position t of a sequence predicts token t+1; a target whose label is -100 (padding) is
no target. Means are over the batch's real targets (a token-level mean, as `model(...).loss` in
transformers), so adding padding changes no value. All arithmetic is in float32.

- nll: per-target negative log-likelihood -log p(x_{t+1} | x_<=t), 0 where no target.
- mean_nll: the mean of nll over all real targets of the batch.
- sequence_nll: per sequence, the summed NLL and the number of targets (NPO, SimNPO).
- kl_reference_current: KL(reference || current) of the next-token distributions, averaged over
  the real (attention_mask = 1) positions only. Averaging over padding too shrinks the term by
  the share of padding (docs/DESIGN.md, "Unlearning losses").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.batches import IGNORE_INDEX


def logits_of(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's logits [batch, length, vocab] for a collated batch (no labels: no HF loss)."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 use_cache=False).logits


def reference_logits(reference, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return logits_of(reference, batch).detach()


def nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-target NLL [B, L-1], target mask [B, L-1] as bool); NLL is 0 where no target."""
    targets = labels[:, 1:]
    # One row per position, the vocabulary contiguous: cross_entropy over a transposed
    # [B, V, L] view took twice as long, forward and backward (about 0.02 s of a 0.17 s GA step
    # on tiny; bench/unlearning_speed.py).
    values = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(),
                             ignore_index=IGNORE_INDEX, reduction="none")
    return values.view(targets.shape), targets != IGNORE_INDEX


def masked_mean(values: torch.Tensor, mask: torch.Tensor, what: str) -> torch.Tensor:
    count = mask.sum()
    if count == 0:
        raise ValueError(f"no {what} in this batch: the mean is undefined")
    return (values * mask).sum() / count


def mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL over the batch's real targets."""
    values, mask = nll(logits, labels)
    return masked_mean(values, mask, "target token")


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL per sequence [B], number of targets per sequence [B])."""
    values, mask = nll(logits, labels)
    return (values * mask).sum(dim=1), mask.sum(dim=1)


def kl_reference_current(current_logits: torch.Tensor, ref_logits: torch.Tensor,
                         attention_mask: torch.Tensor) -> torch.Tensor:
    """mean over real positions t of sum_v p_ref(v|t) * (log p_ref(v|t) - log p_cur(v|t))."""
    log_cur = F.log_softmax(current_logits.float(), dim=-1)
    log_ref = F.log_softmax(ref_logits.float(), dim=-1)
    per_position = (log_ref.exp() * (log_ref - log_cur)).sum(dim=-1)
    return masked_mean(per_position, attention_mask.bool(), "real position")


def retain_nll_term(model, batch_retain, alpha: float) -> tuple[torch.Tensor | float, float | None]:
    """(alpha * mean NLL of the retain batch, that NLL); nothing is computed when alpha is 0."""
    if alpha == 0:
        return 0.0, None
    value = mean_nll(logits_of(model, batch_retain), batch_retain["labels"])
    return alpha * value, value.item()


def retain_kl_term(model, reference, batch_retain, alpha: float
                   ) -> tuple[torch.Tensor | float, dict]:
    """(alpha * KL(reference || current) on the retain batch, logged values); nothing is
    computed when alpha is 0."""
    if alpha == 0:
        return 0.0, {"retain": None}
    current = logits_of(model, batch_retain)
    kl = kl_reference_current(current, reference_logits(reference, batch_retain),
                              batch_retain["attention_mask"])
    retain = mean_nll(current.detach(), batch_retain["labels"]).item()
    return alpha * kl, {"retain": retain, "kl": kl.item()}
