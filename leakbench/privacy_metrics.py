"""The privacy metrics of the `memorization` tests: per variant, how much of the forget set it
still holds, by CodeEraser's memorization measures and by membership inference.

The definitions live in leakbench.memorization (MA, EL_n, extraction strength and CodeEraser's
"forgotten" rule; arXiv 2509.13755, EL_n after Jang et al., arXiv 2210.01504, ES after
OpenUnlearning, arXiv 2506.12618), leakbench.exposure (exposure among decoys, Carlini et al.
2019) and leakbench.membership (LOSS, zlib, Min-K%, Min-K%++, AUC and MUSE's PrivLeak; arXiv
2310.16789, 2404.02936, 2407.06460). This module wires them to the benchmark's data and engine:

- `Plan.build`: every forget and holdout sample tokenized as it was trained (no special tokens).
  Its secret is the tokens that overlap the secret's characters (the rule of
  algorithms.batches.encode_forget), at most SECRET_TOKENS of them as in CodeEraser; its prefix is
  every token of the text before them.
- `Plan.add_requests`: what the engine answers, in the same single `generate` call per engine as
  the leak probes (leakbench.schema.TokenRequest, cached in the completion store):
  - per sample, its whole text with prompt log-probs: MA and ES read the top-1 token at each
    secret position (the teacher-forced argmax); LOSS, zlib and Min-K% read the log-probs of the
    text;
  - per sample and split point i, prefix + secret[:i] decoded greedily for L - i tokens: EL_n.
- `minkpp_scores`: Min-K%++ from one batched transformers forward pass per variant (why there:
  its docstring), cached as an artifact; `exposure_log_perplexities` likewise, the secret's and
  its decoys' log-perplexities.
- `Plan.measure`: the per-sample numbers of each measured variant, after generation (the stage
  leakbench.pipeline.measure); `aggregate`: the metrics one `memorization` test records.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING

from leakbench import artifacts, progress
from leakbench.completions import request_key
from leakbench.exposure import candidate_log_perplexities, exposure, extrapolated_exposure
from leakbench.membership import (
    auc,
    loss_score,
    min_k_plus_plus_score,
    min_k_score,
    next_token_stats,
    oriented_auc,
    privleak,
    zlib_score,
)
from leakbench.memorization import (
    calibrated_threshold,
    el_prompts,
    extraction_likelihood,
    extraction_strength,
    forgotten_share,
    memorization_accuracy,
)
from leakbench.probes import PrivacyData
from leakbench.schema import Answer, Request, Sampling, TokenRequest

if TYPE_CHECKING:
    from leakbench.unlearn import Variant

SECRET_TOKENS = 32  # CodeEraser scores at most the first 32 tokens of a secret
EL_NS = (3, 5, 10)
MIN_K = 0.4  # the k of Min-K% and Min-K%++, as in MUSE's PrivLeak
SPLITS = ("forget", "holdout")
REFERENCE = "retrain"  # PrivLeak's reference: the model trained without the forget set
# Per membership score (leakbench.membership), the metric its AUC is recorded as. `mia_auc`, the
# gate metric, is Min-K%'s: the score MUSE's PrivLeak uses, and so does `privleak` here.
AUC_METRICS = {"loss": "mia_auc_loss", "zlib": "mia_auc_zlib", "min_k": "mia_auc",
               "min_k_plus_plus": "mia_auc_minkpp"}
PRIVLEAK_SCORE = "min_k"
# The per-secret scores calibrated on holdout values, with the metric group that measures each:
# forgotten_<score> and the per-secret `forgotten` tests compare a secret's score with the holdout
# values' 95th percentile; <score>_auc, forget secrets vs holdout values, says whether the score
# sees memorization at all (OpenUnlearning's meta-evaluation): about 1 on the planted model,
# about 0.5 on the model retrained without the forget set.
CALIBRATED_SCORES = {"ma": "ma", "es": "ma", "el10": "el", "exposure": "exposure"}
LOGITS_BUDGET = 1 << 25  # floats of logits per forward pass of minkpp_scores (128 MiB)

# Per split, per score name ("ma", "el3", "loss", "min_k_plus_plus", ...), one value per sample.
Scores = dict[str, dict[str, list[float]]]


@dataclass(frozen=True)
class PlannedSample:
    split: str  # "forget" or "holdout"
    text: str
    ids: tuple[int, ...]  # the whole text
    secret: tuple[int, int]  # its (capped) secret as token positions [start, end), start >= 1
    span: tuple[int, int]  # the secret as characters of the text
    decoys: tuple[str, ...] = ()  # the values it is ranked among for exposure, if measured

    @property
    def secret_ids(self) -> tuple[int, ...]:
        return self.ids[self.secret[0]:self.secret[1]]

    def text_request(self) -> TokenRequest:
        """The whole text, for its prompt log-probs (one new token: the engine needs one)."""
        return TokenRequest(self.ids, Sampling(max_tokens=1), prompt_logprobs=True)

    def el_requests(self) -> list[TokenRequest]:
        """Per split point i, prefix + secret[:i] decoded greedily for the L - i tokens left."""
        secret = self.secret_ids
        return [TokenRequest(tuple(prompt), Sampling(max_tokens=len(secret) - i))
                for i, prompt in enumerate(el_prompts(self.ids[:self.secret[0]], secret))]


@dataclass(frozen=True)
class Plan:
    """The metric groups (leakbench.options.METRIC_GROUPS) to compute for `algorithms`, and the
    samples they are computed on."""

    groups: tuple[str, ...]
    algorithms: tuple[str, ...]
    samples: tuple[PlannedSample, ...]

    @classmethod
    def build(cls, groups: Iterable[str], measured: Iterable[str], algorithms: tuple[str, ...],
              variants: dict[str, Variant], data: PrivacyData) -> Plan | None:
        """The plan for the run's `algorithms` whose memorization tests were collected
        (`measured`), plus the retrain variant when it is in the run and PrivLeak is asked for;
        None when there is nothing to compute."""
        groups, measured = tuple(groups), set(measured)
        if not groups or not measured:
            return None
        if "privleak" in groups and REFERENCE in algorithms:
            measured.add(REFERENCE)
        names = tuple(name for name in algorithms if name in measured)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(variants[names[0]].weights)  # the base's
        samples = []
        for split in SPLITS:
            for sample in data.measured(split):
                ids, (start, end) = value_tokens(sample.text, sample.span, tokenizer)
                decoys = data.decoys.of(sample) if "exposure" in groups else ()
                samples.append(PlannedSample(split, sample.text, ids,
                                             (start, min(end, start + SECRET_TOKENS)),
                                             sample.span, decoys))
        return cls(groups, names, tuple(samples))

    @property
    def wants_logprobs(self) -> bool:
        return bool({"ma", "mia", "privleak"} & set(self.groups))

    def requests(self) -> list[TokenRequest]:
        """What the engine answers for one variant."""
        out: list[TokenRequest] = []
        for sample in self.samples:
            if self.wants_logprobs:
                out.append(sample.text_request())
            if "el" in self.groups:
                out += sample.el_requests()
        return out

    def add_requests(self, needed: dict[str, list[Request | TokenRequest]]
                     ) -> dict[str, list[Request | TokenRequest]]:
        """`needed` (per algorithm, the requests of the run) with this plan's requests added."""
        mine = self.requests()
        return {**needed, **{name: [*needed.get(name, []), *mine] for name in self.algorithms}}

    def measure(self, variants: dict[str, Variant], answers: dict[str, dict[str, Answer]],
                cache_dir: Path, *, rebuild: bool) -> dict[str, Scores]:
        """Per planned algorithm, its per-sample scores from the engine's `answers` (per algorithm,
        request key -> answer), for "mia" Min-K%++ from `minkpp_scores` and for "exposure" the
        candidates' log-perplexities from `exposure_log_perplexities`."""
        measured = {}
        for name in self.algorithms:
            minkpp = (minkpp_scores(variants[name], self, cache_dir, rebuild=rebuild)
                      if "mia" in self.groups else None)
            candidates = (exposure_log_perplexities(variants[name], self, cache_dir,
                                                    rebuild=rebuild)
                          if "exposure" in self.groups else None)
            measured[name] = self.scores(answers[name], minkpp, candidates)
        return measured

    def scores(self, answers: dict[str, Answer], minkpp: list[float] | None,
               candidates: list[list[float]] | None = None) -> Scores:
        """One variant's per-sample scores; `minkpp` holds Min-K%++ per sample in plan order,
        `candidates` the log-perplexities of its secret and then of its decoys."""
        scores: Scores = {split: {} for split in SPLITS}
        for index, sample in enumerate(self.samples):
            values = scores[sample.split]
            if self.wants_logprobs:
                for name, value in _logprob_scores(sample, answers).items():
                    values.setdefault(name, []).append(value)
            if "el" in self.groups:
                continuations = [answers[request_key(r)]["token_ids"][0]
                                 for r in sample.el_requests()]
                for n in EL_NS:
                    values.setdefault(f"el{n}", []).append(
                        extraction_likelihood(continuations, sample.secret_ids, n))
            if minkpp is not None:
                values.setdefault("min_k_plus_plus", []).append(minkpp[index])
            if candidates is not None:
                secret, *decoys = candidates[index]
                values.setdefault("exposure", []).append(exposure(secret, decoys))
                values.setdefault("exposure_extrapolated", []).append(
                    extrapolated_exposure(secret, decoys))
                values.setdefault("exposure_top", []).append(float(min(decoys) > secret))
        return scores


def _logprob_scores(sample: PlannedSample, answers: dict[str, Answer]) -> dict[str, float]:
    """MA, LOSS, zlib and Min-K% of one sample from its text's prompt log-probs."""
    pairs = answers[request_key(sample.text_request())]["prompt_logprobs"]  # entry t-1: token t
    logprobs = [logprob for logprob, _ in pairs]
    start, end = sample.secret
    argmax = [top for _, top in pairs[start - 1:end - 1]]
    return {"ma": memorization_accuracy(argmax, sample.secret_ids),
            "es": extraction_strength(argmax, sample.secret_ids),
            "loss": loss_score(logprobs), "zlib": zlib_score(logprobs, sample.text),
            "min_k": min_k_score(logprobs, MIN_K)}


def minkpp_scores(variant: Variant, plan: Plan, cache_dir: Path, *, rebuild: bool = False
                  ) -> list[float]:
    """Min-K%++ of every planned text under `variant`, in plan order; an artifact keyed by the
    variant and the texts' tokens.

    Computed with transformers (membership.next_token_stats), in the worker that measures, not by
    the engine: Min-K%++ standardizes each token's log-prob by the mean and variance of the model's
    whole next-token distribution, and vLLM's prompt_logprobs returns the actual token and the top
    k only (all of the vocabulary at every position would be vocabulary-size times the data of the
    texts, through the engine's output). The weights are at hand there (`_load_model`). Texts go
    in batches of similar length, at most LOGITS_BUDGET logits each.
    """
    inputs = {"variant": variant.key, "k": MIN_K,
              "texts": artifacts.content_key({"ids": [s.ids for s in plan.samples]})}
    out = artifacts.build(cache_dir, "minkpp", inputs,
                          lambda directory: _write_minkpp(variant, plan, directory),
                          rebuild=rebuild, label=f"Min-K%++ {variant.algorithm}")
    return json.loads((out / "scores.json").read_text())


def _load_model(variant: Variant):
    """The variant's model for a forward pass: a full-weight variant as is, a LoRA variant as its
    base plus the adapter (PEFT); on the GPU in bfloat16 where there is one."""
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(variant.weights, dtype=dtype)
    if variant.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(variant.adapter))
    return model.to(device).eval()


def _write_minkpp(variant: Variant, plan: Plan, out: Path) -> None:
    import torch

    model = _load_model(variant)
    vocab = model.config.vocab_size
    order = sorted(range(len(plan.samples)), key=lambda i: len(plan.samples[i].ids))
    scores = [0.0] * len(order)
    batch: list[int] = []
    for position, index in enumerate(order):
        batch.append(index)
        nxt = order[position + 1] if position + 1 < len(order) else None
        if nxt is None or (len(batch) + 1) * len(plan.samples[nxt].ids) * vocab > LOGITS_BUDGET:
            stats = next_token_stats(model, [plan.samples[i].ids for i in batch])
            for i, lps, means, variances in zip(batch, *stats):
                scores[i] = min_k_plus_plus_score(lps, means, variances, MIN_K)
            batch = []
    (out / "scores.json").write_text(json.dumps(scores))
    del model
    torch.cuda.empty_cache()  # leave the GPU's memory to the next stage


def value_tokens(text: str, span: tuple[int, int], tokenizer) -> tuple[tuple[int, ...],
                                                                     tuple[int, int]]:
    """`text` tokenized as it was trained, and the token positions [start, end) that hold the
    characters `span` (algorithms.batches.encode_forget's rule); start >= 1, as a case's value
    always has text before it."""
    from algorithms.batches import encode_forget

    example = encode_forget(text, span, tokenizer, sys.maxsize)
    return tuple(example.input_ids), _marked(example.secret_mask)


def _marked(mask: Sequence[int]) -> tuple[int, int]:
    """The token positions [first, last + 1) a secret mask marks."""
    marked = [i for i, m in enumerate(mask) if m]
    return marked[0], marked[-1] + 1


def exposure_log_perplexities(variant: Variant, plan: Plan, cache_dir: Path, *,
                              rebuild: bool = False) -> list[list[float]]:
    """Per planned sample, in plan order, the log-perplexity of its secret and then of each of its
    decoys put in the secret's place (leakbench.exposure); an artifact keyed by the variant, the
    texts and the decoys.

    Like Min-K%++, computed with transformers in the worker that measures: the engine answers
    prompt log-probs of whole texts, and R decoys per secret through it would be R whole texts
    each; here the text before the value runs once and only the values run R times
    (exposure.candidate_log_perplexities)."""
    import torch

    from leakbench.precision import cpu_precision

    inputs = {"variant": variant.key,
              "candidates": artifacts.content_key({"samples": [
                  [s.text, list(s.span), list(s.decoys)] for s in plan.samples]}),
              "precision": ({"device": "cuda"} if torch.cuda.is_available()
                            else cpu_precision().key_inputs())}
    out = artifacts.build(cache_dir, "exposure", inputs,
                          lambda directory: _write_exposure(variant, plan, directory),
                          rebuild=rebuild, label=f"exposure {variant.algorithm}")
    return json.loads((out / "log_perplexities.json").read_text())


def _write_exposure(variant: Variant, plan: Plan, out: Path) -> None:
    """Each sample's candidate texts are tokenized in one call (the secret's and its decoys'
    tokens by algorithms.batches.overlap_mask, the rule `value_tokens` follows) and scored in the
    training loops' CPU precision (leakbench.precision: bfloat16 autocast where native)."""
    import torch
    from transformers import AutoTokenizer

    from algorithms.batches import overlap_mask
    from leakbench.precision import cpu_precision

    tokenizer = AutoTokenizer.from_pretrained(variant.weights)
    model = _load_model(variant)
    on_cpu = next(model.parameters()).device.type == "cpu"
    stage = progress.current()
    stage.set_total(len(plan.samples), unit="secret")
    result = []
    with cpu_precision().forward_context() if on_cpu else contextlib.nullcontext():
        for sample in plan.samples:
            start, end = sample.span
            values = (sample.text[start:end], *sample.decoys)
            encoded = tokenizer([sample.text[:start] + value + sample.text[end:]
                                 for value in values],
                                add_special_tokens=False, return_offsets_mapping=True)
            rows, spans = [], []
            for ids, offsets, value in zip(encoded["input_ids"], encoded["offset_mapping"],
                                           values):
                first, end = _marked(overlap_mask(offsets, (start, start + len(value))))
                rows.append(ids[:end])
                spans.append((first, end))
            result.append(candidate_log_perplexities(model, rows, spans, LOGITS_BUDGET))
            stage.advance(candidates=len(rows))
    (out / "log_perplexities.json").write_text(json.dumps(result))
    del model
    torch.cuda.empty_cache()


def aggregate(scores: Scores, reference: Scores | None, groups: Iterable[str]) -> dict[str, float]:
    """The metrics of one variant, by name as the report shows them, from its per-sample `scores`
    and the retrain variant's (`reference`, None when the run has none: no PrivLeak then).

    ``ma``/``ma_holdout``, ``es``/``es_holdout`` and ``el<n>``/``el<n>_holdout``: means over the
    forget and the holdout samples; ``exposure``/``exposure_holdout`` and
    ``exposure_extrapolated``/``…_holdout`` the same in bits; ``exposure_top_share``: the share
    of forget secrets more likely than every one of their decoys; ``forgotten_<score>``: the
    share of forget secrets whose score is at most the holdout scores' 95th percentile
    (memorization.forgotten_share), and ``<score>_auc`` the chance that a forget secret scores
    above a holdout value, how well the score tells them apart (both for CALIBRATED_SCORES);
    ``mia_auc*``
    (AUC_METRICS): oriented AUC, forget vs holdout texts (0.5 = indistinguishable);
    ``privleak``: MUSE's PrivLeak of the Min-K% AUC against the reference's, in percent.
    """
    groups = set(groups)
    forget, holdout = scores["forget"], scores["holdout"]
    metrics: dict[str, float] = {}

    def means(*names: str) -> None:
        for name in names:
            metrics[name], metrics[f"{name}_holdout"] = fmean(forget[name]), fmean(holdout[name])

    if "ma" in groups:
        means("ma", "es")
    if "el" in groups:
        means(*(f"el{n}" for n in EL_NS))
    if "exposure" in groups:
        means("exposure", "exposure_extrapolated")
        metrics["exposure_top_share"] = fmean(forget["exposure_top"])
    for score, group in CALIBRATED_SCORES.items():
        if group in groups:
            metrics[f"forgotten_{score}"] = forgotten_share(forget[score], holdout[score])
            metrics[f"{score}_auc"] = auc(forget[score], holdout[score])
    if "mia" in groups:
        for score, name in AUC_METRICS.items():
            metrics[name] = oriented_auc(forget[score], holdout[score], score)
    if "privleak" in groups and reference is not None:
        metrics["privleak"] = privleak(_auc(scores), _auc(reference))
    return metrics


def still_held(scores: Scores, index: int) -> dict[str, tuple[float, float]]:
    """By which calibrated scores (CALIBRATED_SCORES, those measured) the forget secret at
    `index` (the run's forget order) is still held: name -> (its score, the holdout threshold
    it is above, memorization.calibrated_threshold)."""
    forget, holdout = scores["forget"], scores["holdout"]
    held = {}
    for score in CALIBRATED_SCORES:
        if score in forget:
            value, threshold = forget[score][index], calibrated_threshold(holdout[score])
            if value > threshold:
                held[score] = (value, threshold)
    return held


def _auc(scores: Scores) -> float:
    return oriented_auc(scores["forget"][PRIVLEAK_SCORE], scores["holdout"][PRIVLEAK_SCORE],
                        PRIVLEAK_SCORE)
