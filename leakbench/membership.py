"""Membership inference on the forget set: per-text scores, their AUC, and MUSE's PrivLeak.

Sources (definitions restated in our own words; no code was copied):
- LOSS, zlib and Min-K%: Shi et al. 2023, "Detecting Pretraining Data from Large Language
  Models" (arXiv 2310.16789); zlib after Carlini et al. 2021, "Extracting Training Data from
  Large Language Models". As implemented in MUSE (swj0419/muse_bench, metrics/privleak.py).
- Min-K%++: Zhang et al. 2024, "Min-K%++: Improved Baseline for Detecting Pre-Training Data
  from Large Language Models" (arXiv 2404.02936; zjysteven/mink-plus-plus, run.py).
- PrivLeak: Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation for Language Models"
  (arXiv 2407.06460; swj0419/muse_bench, eval.py and metrics/privleak.py).

Input per text: ``token_logprobs[t] = log p(x_{t+1} | x_<=t)``, the log-prob of each actual next
token; the first token has no prediction and is excluded (vLLM's prompt_logprobs has None there).

Scores, and which direction means "member" (seen in training):
- loss_score = -(1/T) sum_t lp_t (mean NLL).                               higher = NON-member
- zlib_score = -(sum_t lp_t) / len(zlib.compress(text as UTF-8)), the total NLL in nats per
  byte of zlib's encoding of the text (default level).                    higher = NON-member
  MUSE and Min-K%++ divide the *mean* NLL instead; the total compares two code lengths of the
  same text (model's vs zlib's), while mean NLL / bytes shrinks as a text grows, whatever the
  model knows, so texts of different lengths rank by length.
- min_k_score = mean of the K = max(1, floor(k*T)) lowest lp_t (k = 0.4 as in MUSE's PrivLeak;
  MUSE stores its negation; floor as in both sources, at least one token).  higher = member
- min_k_plus_plus_score: z_t = (lp_t - mu_t) / sigma_t with mu_t = E_{z~p_t}[log p_t(z)] and
  sigma_t^2 = Var_{z~p_t}[log p_t(z)] of the model's own next-token distribution p_t at t;
  then the mean of the K lowest z_t.                                      higher = member

AUC orientation used throughout LeakBench: ``auc(member_scores, nonmember_scores)`` is
P(member score > non-member score), ties 1/2; `oriented_auc` feeds it the forget set as
members and the holdout set as non-members, each score oriented so that higher = member. So
0.5 = indistinguishable, > 0.5 = the forget set is still recognisable, < 0.5 = it looks *less*
familiar than text never seen (over-unlearned).

PrivLeak sign: MUSE computes its AUC the other way round. Its sweep labels the forget texts 0
and the holdout texts 1 and ranks by a member-high score (minus its loss-like values), so
AUC_MUSE = P(holdout looks more member-like than forget) = 1 - (our oriented AUC). MUSE:
    PrivLeak = (AUC_MUSE_unlearned - AUC_MUSE_retrained) / AUC_MUSE_retrained * 100.
`privleak` takes our oriented AUCs and returns exactly MUSE's number. Near 0 is the goal (the
unlearned model looks like the retrained one); strongly NEGATIVE = the forget set is still
recognisable (still memorized); strongly POSITIVE = it looks less familiar than never-seen
text (over-unlearned), which is itself a membership signal.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from leakbench.memorization import right_padded_logits

if TYPE_CHECKING:
    import torch

# Whether a higher value of each score means "member" (see the module docstring).
HIGHER_MEANS_MEMBER = {"loss": False, "zlib": False, "min_k": True, "min_k_plus_plus": True}

# Floor on sigma_t^2 in Min-K%++: a one-hot distribution in float32 has variance exactly 0.
MIN_VARIANCE = 1e-12


def _nonempty(token_logprobs: Sequence[float]) -> Sequence[float]:
    if not token_logprobs:
        raise ValueError("no token log-probs (a text needs at least two tokens)")
    return token_logprobs


def loss_score(token_logprobs: Sequence[float]) -> float:
    """LOSS: mean negative log-likelihood -(1/T) sum_t lp_t. Higher = non-member."""
    lps = _nonempty(token_logprobs)
    return -sum(lps) / len(lps)


def zlib_score(token_logprobs: Sequence[float], text: str) -> float:
    """zlib: total NLL -sum_t lp_t divided by the byte length of zlib.compress(text UTF-8).
    Higher = non-member."""
    return -sum(_nonempty(token_logprobs)) / len(zlib.compress(text.encode("utf-8")))


def _lowest_mean(values: Sequence[float], k: float) -> float:
    if not 0 < k <= 1:
        raise ValueError(f"k must lie in (0, 1], got {k}")
    lowest = sorted(_nonempty(values))[: max(1, int(k * len(values)))]
    return sum(lowest) / len(lowest)


def min_k_score(token_logprobs: Sequence[float], k: float = 0.4) -> float:
    """Min-K%: mean of the max(1, floor(k*T)) lowest token log-probs. Higher = member."""
    return _lowest_mean(token_logprobs, k)


def min_k_plus_plus_score(token_logprobs: Sequence[float], means: Sequence[float],
                          variances: Sequence[float], k: float = 0.4) -> float:
    """Min-K%++: Min-K% over z_t = (lp_t - mu_t) / sqrt(max(sigma_t^2, MIN_VARIANCE)).
    Higher = member. ``means``/``variances`` come from `next_token_stats`."""
    if not len(token_logprobs) == len(means) == len(variances):
        raise ValueError("token_logprobs, means and variances differ in length")
    z = [(lp - mu) / math.sqrt(max(var, MIN_VARIANCE))
         for lp, mu, var in zip(token_logprobs, means, variances)]
    return _lowest_mean(z, k)


def next_token_stats(model: torch.nn.Module, input_ids: Sequence[Sequence[int]],
                     ) -> tuple[list[list[float]], list[list[float]], list[list[float]]]:
    """(token_logprobs, means, variances) per row, each of length len(row) - 1, from one
    batched, right-padded forward pass (padding masked, never read).

    At position t (predicting token t+1), with p = softmax(logits_t) in float32:
    token_logprob = log p(x_{t+1}), mean mu = sum_z p(z) log p(z),
    variance = sum_z p(z) (log p(z) - mu)^2.
    Min-K%++ needs the whole next-token distribution; vLLM's prompt_logprobs returns only the
    actual token and the top-k, so these statistics take one transformers pass (the log-probs
    alone, for LOSS, zlib and Min-K%, may come from vLLM). Memory is batch x longest x vocab
    floats: the caller chunks large inputs. The caller sets eval mode.
    """
    import torch

    if any(len(row) < 2 for row in input_ids):
        raise ValueError("every row needs at least two tokens")
    logp = torch.log_softmax(right_padded_logits(model, input_ids)[:, :-1], dim=-1)
    p = logp.exp()
    means = (p * logp).sum(-1)
    variances = (p * (logp - means.unsqueeze(-1)).square()).sum(-1)
    out: tuple[list[list[float]], list[list[float]], list[list[float]]] = ([], [], [])
    for r, row in enumerate(input_ids):
        t = len(row) - 1
        targets = torch.tensor(list(row[1:]), dtype=torch.long, device=logp.device)
        out[0].append(logp[r, :t].gather(-1, targets.unsqueeze(-1)).squeeze(-1).tolist())
        out[1].append(means[r, :t].tolist())
        out[2].append(variances[r, :t].tolist())
    return out


def auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """P(a random member scores higher than a random non-member), ties counting 1/2.

    Rank form of the Mann-Whitney U: rank the pooled scores (tied scores share their mean
    rank); U = (sum of the members' ranks) - m(m+1)/2; AUC = U / (m * n).
    """
    m, n = len(member_scores), len(nonmember_scores)
    if m == 0 or n == 0:
        raise ValueError("need at least one member and one non-member score")
    pooled = sorted([(s, True) for s in member_scores] + [(s, False) for s in nonmember_scores])
    if any(math.isnan(s) for s, _ in pooled):
        raise ValueError("a score is NaN")
    rank_sum, start = 0.0, 0
    while start < len(pooled):
        end = start
        while end < len(pooled) and pooled[end][0] == pooled[start][0]:
            end += 1
        mean_rank = (start + 1 + end) / 2  # ranks start+1 .. end
        rank_sum += mean_rank * sum(is_member for _, is_member in pooled[start:end])
        start = end
    return (rank_sum - m * (m + 1) / 2) / (m * n)


def oriented_auc(forget_scores: Sequence[float], holdout_scores: Sequence[float],
                 score: str) -> float:
    """AUC with the forget set as members, ``score`` (a key of HIGHER_MEANS_MEMBER) oriented so
    that 0.5 = indistinguishable and > 0.5 = the forget set is recognisable."""
    if HIGHER_MEANS_MEMBER[score]:
        return auc(forget_scores, holdout_scores)
    return auc([-s for s in forget_scores], [-s for s in holdout_scores])


def privleak(auc_unlearned: float, auc_retrained: float) -> float:
    """MUSE's PrivLeak, in percent, from our oriented AUCs (`oriented_auc`, forget vs holdout)
    of the unlearned and the retrained model.

    With AUC_MUSE = 1 - oriented AUC (module docstring):
        PrivLeak = (AUC_MUSE_unlearned - AUC_MUSE_retrained) / AUC_MUSE_retrained * 100
                 = (auc_retrained - auc_unlearned) / (1 - auc_retrained) * 100.
    ~0: like the retrained model (the goal); strongly negative: still memorized; strongly
    positive: over-unlearned.
    """
    for value in (auc_unlearned, auc_retrained):
        if not 0 <= value <= 1:
            raise ValueError(f"an AUC lies in [0, 1], got {value}")
    muse_unlearned, muse_retrained = 1 - auc_unlearned, 1 - auc_retrained
    if muse_retrained == 0:
        raise ValueError("PrivLeak is undefined when the retrained model separates the forget "
                         "set perfectly (oriented AUC 1)")
    return (muse_unlearned - muse_retrained) / muse_retrained * 100
