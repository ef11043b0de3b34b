"""Exposure of a planted secret among decoys, after Carlini et al., "The Secret Sharer: Evaluating
and Testing Unintended Memorization in Neural Networks" (USENIX Security 2019). Definitions
restated in our own words; no code was copied.

A secret's candidates are the secret itself and R decoys: values of the same kind drawn by the
generator that drew the secret, never trained on (leakbench.cases.decoys). Each candidate is put in
the secret's place in its training text, and scored by its *log-perplexity*: the negative sum of
the log-probabilities of the tokens that hold the value, given the text before them.

- Rank: 1 + the number of decoys with a lower log-perplexity (ties count one half).
- Exposure, in bits: log2(R + 1) - log2(rank). A value the model never saw ranks anywhere with the
  same chance, so its exposure averages log2(R + 1) - log2((R + 1)!) / (R + 1): 1.16 bits at
  R = 10, 1.40 at R = 100, towards 1/ln 2 = 1.44 as R grows; a secret more likely than every
  decoy reaches the most R allows, log2(R + 1).
- Extrapolated exposure: the Secret Sharer estimates the rank among *all* values of the format by
  fitting a distribution to the decoys' log-perplexities; here a normal one (mean and standard
  deviation of the decoys'), and -log2 of its probability below the secret's log-perplexity. It
  keeps growing past log2(R + 1) where the rank cannot.

`candidate_log_perplexities` scores one secret's candidates in one pass over the shared text
before them (transformers, key-value cache copied per batch), so R decoys cost R short values,
not R whole texts.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from statistics import fmean, pstdev
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_LN2 = math.log(2)


def rank(secret: float, decoys: Sequence[float]) -> float:
    """The secret's rank by log-perplexity among itself and `decoys` (1 = the most likely)."""
    lower = sum(d < secret for d in decoys)
    ties = sum(d == secret for d in decoys)
    return 1 + lower + ties / 2


def exposure(secret: float, decoys: Sequence[float]) -> float:
    """log2(R + 1) - log2(rank), in bits (module docstring)."""
    if not decoys:
        raise ValueError("exposure needs at least one decoy")
    return math.log2(len(decoys) + 1) - math.log2(rank(secret, decoys))


def _log_normal_cdf(z: float) -> float:
    """log Phi(z), kept finite deep in the lower tail where Phi itself underflows."""
    if z > -30:
        return math.log(0.5 * math.erfc(-z / math.sqrt(2)))
    return -z * z / 2 - math.log(-z) - 0.5 * math.log(2 * math.pi)  # Mills ratio, error < 0.1%


def extrapolated_exposure(secret: float, decoys: Sequence[float]) -> float:
    """-log2 P(X <= secret) for X normal with the decoys' mean and standard deviation, in bits."""
    if len(decoys) < 2:
        raise ValueError("extrapolated exposure needs at least two decoys")
    spread = pstdev(decoys)
    if spread == 0:
        raise ValueError("every decoy has the same log-perplexity: no distribution to fit")
    return -_log_normal_cdf((secret - fmean(decoys)) / spread) / _LN2


def candidate_log_perplexities(model: torch.nn.Module, rows: Sequence[Sequence[int]],
                               values: Sequence[tuple[int, int]], logits_budget: int
                               ) -> list[float]:
    """Per row, the negative sum of the log-probabilities of its tokens values[r] = [start, end).

    The rows are one text with different values in it: they share the tokens before the values
    (at least one). Those run once, with a key-value cache; the rest of every row runs against a
    copy of that cache, right-padded, in batches of at most `logits_budget` logits. Runs under
    inference_mode; the caller sets eval mode.
    """
    import torch

    if len(rows) != len(values) or not rows:
        raise ValueError(f"{len(values)} value spans for {len(rows)} rows")
    for row, (start, end) in zip(rows, values):
        if not 1 <= start < end <= len(row):
            raise ValueError(f"value span ({start}, {end}) invalid for a row of {len(row)} tokens")
    shared = min(start for start, _ in values)
    first = rows[0]
    for row in rows[1:]:
        shared = next((i for i in range(shared) if row[i] != first[i]), shared)
    if shared == 0:
        raise ValueError("the rows share no token before their values")
    device = next(model.parameters()).device
    vocab = model.config.vocab_size
    rests = [list(row[shared:end]) for row, (_, end) in zip(rows, values)]
    width = max(len(rest) for rest in rests)
    per_batch = max(1, logits_budget // (width * vocab))
    out: list[float] = []
    with torch.inference_mode():
        head = model(input_ids=torch.tensor([list(first[:shared])], device=device),
                     use_cache=True)
        first_logprobs = torch.log_softmax(head.logits[0, -1].float(), dim=-1)
        for begin in range(0, len(rests), per_batch):
            batch = rests[begin:begin + per_batch]
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), shared + width), dtype=torch.long)
            mask[:, :shared] = 1
            for r, rest in enumerate(batch):
                ids[r, :len(rest)] = torch.tensor(rest, dtype=torch.long)
                mask[r, shared:shared + len(rest)] = 1
            cache = copy.deepcopy(head.past_key_values)
            cache.batch_repeat_interleave(len(batch))
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           past_key_values=cache, use_cache=True).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            ids = ids.to(device)
            # Per row and position k, the log-prob of its token k: k = 0 is predicted by the
            # shared text's last position, k >= 1 by the row's position k - 1.
            token_logprobs = torch.cat([first_logprobs[ids[:, :1]],
                                        logprobs[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]],
                                       dim=1)
            scored = torch.zeros((len(batch), width), dtype=torch.bool)
            for r in range(len(batch)):
                start, end = values[begin + r]
                scored[r, start - shared:end - shared] = True
            out += (-(token_logprobs * scored.to(device)).sum(dim=1)).tolist()
    return out
