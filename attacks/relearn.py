"""Relearning: fine-tune the variant on a slice of the forgotten owners' own training texts.

Deeb & Roger, "Do Unlearning Methods Remove Information from Language Model Weights?" (arXiv
2410.08827): fine-tuning an unlearned model on some of the forgotten facts brings back the other
forgotten facts, which it never saw again, when unlearning only hid them; a model that never
learned them (here the `retrain` reference) gains little. The slice is about a tenth of the
planted owners (attacks.slices); the attack is judged on the other owners' probes only.

The fine-tuning is planting's own loop and recipe (leakbench.plant.fine_tune with the family's
PlantConfig): AdamW, weight decay 0, gradients clipped to norm 1, batches of `batch_size` texts
with an end-of-sequence token, full weights or a merged LoRA as the planting was. What differs:
`steps` optimizer steps on the slice's texts only, reshuffled on every pass, at a constant
learning rate of `lr_fraction` times planting's peak rate. Planting decays to a tenth of its peak
(leakbench.plant), so 0.1 continues training where planting ended; at the peak rate itself a few
dozen steps on a handful of texts overwrite the model (it then only echoes the slice), and an
attack that breaks the model shows nothing about what unlearning removed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from attacks import Family
from attacks.slices import relearn_split


def texts(run) -> list[str]:
    """The slice's training texts."""
    return [s.text for s in relearn_split(run.forget)[0]]


def key_inputs(settings: dict, run) -> dict:
    return training_inputs(texts(run), run.plant_config)


def apply(settings: dict, source, run, out) -> None:
    train(source, texts(run), settings, run.plant_config, out)


def training_inputs(train_texts: list[str], config) -> dict:
    """What a relearning run is made from besides the weights and the step count."""
    from algorithms.batches import DOCUMENT_FORMAT
    from attacks.stage import versions
    from leakbench import artifacts
    from leakbench.precision import training_precision

    return {"texts": artifacts.content_key({"texts": train_texts}), "recipe": config.key(),
            "documents": DOCUMENT_FORMAT, **training_precision(config.mode).key_inputs(),
            "versions": versions("accelerate")}


def passes(train_texts: list[str], batch_size: int, seed: int) -> Iterator[list[str]]:
    """Batches of `train_texts`, reshuffled on every pass, without end."""
    rng = random.Random(seed)
    while True:
        order = list(train_texts)
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            yield order[i : i + batch_size]


def train(source, train_texts: list[str], settings: dict, config, out) -> None:
    """The setting's `steps` steps of the planting loop on `train_texts` from `source`, at
    `lr_fraction` of planting's peak learning rate, written to `out`."""
    from leakbench.plant import fine_tune
    from leakbench.precision import training_precision

    steps, lr = settings["steps"], settings["lr_fraction"] * config.lr
    fine_tune(source.load, source.weights, passes(train_texts, config.batch_size, config.seed),
              steps, lambda step: lr, config, training_precision(config.mode), out,
              desc=f"relearning {steps} steps", log_name="training_log.json",
              log_extra={"texts": len(train_texts)})


FAMILY = Family("relearn", "fine-tuning on the forget texts of a tenth of the planted owners",
                {"relearn5": {"steps": 5, "lr_fraction": 0.1},
                 "relearn25": {"steps": 25, "lr_fraction": 0.1}}, key_inputs, apply,
                trains_on_slice=True)
