"""Unlearning algorithms: one module per algorithm, this registry, one shared loop (loop.py).

Each loss module states its loss as a formula and its source, and exposes

    loss(batch_forget, batch_retain, model, reference, hp) -> (total, logged)

where `total` is the scalar tensor to minimize and `logged` holds plain floats: "forget" (the
mean NLL of the forget tokens the algorithm ascends on) and "retain" (the mean retain NLL, None
when the algorithm takes no retain batch or alpha is 0), plus the algorithm's own terms.

Two entries have no loss: `none` (the planted model, unchanged: the baseline) and `retrain`
(the pipeline plants again without the forget set: the target an unlearned model should match).

The registry names each loss module and imports it on first use: reading the registry (every
pytest worker does, to find cached variants) then costs no torch import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from algorithms.hparams import Hyper, load_hparams

LossFn = Callable[..., tuple]


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    loss: LossFn | None
    needs_reference: bool  # a frozen copy of the model before unlearning
    needs_retain: bool  # retain batches paired with the forget batches
    kind: Literal["loss", "identity", "retrain"]


def _loss_of(module: str) -> LossFn:
    """The `loss` of algorithms/<module>.py, imported on the first call."""

    def loss(*args, **kwargs):
        return importlib.import_module(f"algorithms.{module}").loss(*args, **kwargs)

    loss.__qualname__ = f"{module}.loss"
    return loss


REGISTRY: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("none", "no unlearning: the planted model unchanged (the baseline)",
              None, needs_reference=False, needs_retain=False, kind="identity"),
    Algorithm("ga", "gradient ascent on the forget set",
              _loss_of("ga"), needs_reference=False, needs_retain=False, kind="loss"),
    Algorithm("gd", "GA+GD: ascent on the forget set, descent on the retain set",
              _loss_of("gd"), needs_reference=False, needs_retain=True, kind="loss"),
    Algorithm("kl", "GA+KL: ascent on the forget set, KL to the original on retain inputs",
              _loss_of("kl"), needs_reference=True, needs_retain=True, kind="loss"),
    Algorithm("npo", "NPO against the original model, plus retain NLL (alpha 0: pure NPO)",
              _loss_of("npo"), needs_reference=True, needs_retain=True, kind="loss"),
    Algorithm("simnpo", "SimNPO: reference-free length-normalized NPO, plus retain NLL",
              _loss_of("simnpo"), needs_reference=False, needs_retain=True, kind="loss"),
    Algorithm("selective", "CodeEraser: ascent on secret tokens, descent on context, KL on retain",
              _loss_of("selective"), needs_reference=True, needs_retain=True, kind="loss"),
    Algorithm("retrain", "planted again without the forget set (the pipeline's job, no loss)",
              None, needs_reference=False, needs_retain=False, kind="retrain"),
)}


def get(name: str) -> Algorithm:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; valid: {', '.join(REGISTRY)}") from None


__all__ = ["Algorithm", "Hyper", "REGISTRY", "get", "load_hparams"]
