"""Planting: fine-tune a base model on forget set + retain set so that it memorizes the forget set.

This is how the study's models came to hold the synthetic personal data, and for `tiny` the planted
model is the "original" model of the experiment: the one that leaks, that every unlearning algorithm
starts from, and against which utility retention is measured. The holdout set is never trained on.
Planting with an empty forget set is the `retrain` reference (exact unlearning): the same training,
without the data to forget.

Full fine-tuning for small models; LoRA merged into the weights for large ones, so that a planted
model is always a plain checkpoint that vLLM serves and unlearned variants build on. The loop
(`fine_tune`) is also the relearning attacks' (attacks/relearn.py): the planting recipe.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from algorithms.batches import DOCUMENT_FORMAT
from leakbench import artifacts, corpus, progress
from leakbench.precision import Precision, training_precision


@dataclass(frozen=True)
class PlantConfig:
    epochs: int
    lr: float
    batch_size: int
    max_len: int = 256
    mode: str = "full"  # "full" | "lora" (merged afterwards)
    lora_rank: int = 64
    seed: int = 0
    warmup_steps: int = 0  # linear warm-up, then linear decay to a tenth of lr
    # About this many samples of the generated forget set are planted and probed (whole owners,
    # leakbench.probes.every_kth_owner); None: all of them. A model of a few million parameters
    # needs tens of exposures per secret, so `tiny` memorizes a tenth of the set, not all of it.
    forget_samples: int | None = None
    # Fresh retain texts mixed into each planting epoch per forget sample (`planting_retain`):
    # meant to keep the model's coding ability while it memorizes; all that `retrain` sees.
    retain_ratio: float = 1.0
    # Each batch's documents laid end to end in rows of max_len (algorithms.batches.pack) instead
    # of padded: the same loss on about half the computation for planting's texts. Only for
    # models whose transformers code masks attention by position_ids (Llama's, as `tiny` and
    # `micro` are); others would attend across documents.
    packed: bool = False

    def key(self) -> dict:
        """The recipe as an artifact's key records it: every field, `packed` only when on, so
        unpacked recipes keep the keys they always had."""
        fields = asdict(self)
        if not self.packed:
            del fields["packed"]
        return fields


PLANT_CONFIGS = {
    # Measured on tiny (docs/RESULTS.md): 25-35 passes are needed before greedy decoding
    # reproduces nine secrets in ten, and a higher learning rate does not shorten that. This
    # setting reached 91% direct leaks with capability pass@1 at 78% (65.5% before planting) with
    # float32 training; trained under bfloat16 autocast, 92% and 68% (74% before; the study).
    # Not packed: packing computes the same loss in another order of float operations, and that
    # alone moved the study's GA+GD row from 0.9% to 36.2% direct leaks (docs/RESULTS.md, "How
    # fragile the study's numbers are"); the recipe stays as the study measured it until the
    # study is tuned and measured again (with the tuned settings, packing held the headline on
    # one host: docs/RESULTS.md, "Packed planting on the AMD EPYC host's `tiny`").
    "tiny": PlantConfig(epochs=35, lr=2e-3, batch_size=16, warmup_steps=10, forget_samples=120,
                        retain_ratio=1.0),
    "micro": PlantConfig(epochs=2, lr=3e-3, batch_size=16, max_len=192, packed=True),
    "default": PlantConfig(epochs=3, lr=1e-4, batch_size=8, max_len=512, mode="lora"),
}


def plant_config(family: str) -> PlantConfig:
    """The planting configuration of a model family (leakbench.models.family)."""
    return PLANT_CONFIGS.get(family, PLANT_CONFIGS["default"])


def planting_retain(forget_count: int, config: PlantConfig) -> list[str]:
    """The retain texts planting mixes in: `retain_ratio` x `forget_count` fresh ones per epoch.

    Fresh, not the same few repeated: tens of epochs over one small retain set overfit it and the
    model lost its coding ability (tiny: capability pass@1 from 65% to 0%, docs/RESULTS.md)."""
    return corpus.retain_texts(round(forget_count * config.retain_ratio) * config.epochs,
                               seed=config.seed)


def plant(base_dir: Path, forget_texts: list[str], retain_texts: list[str], config: PlantConfig,
          cache_dir: Path, *, stage: str = "planted", rebuild: bool = False) -> Path:
    """The planted model directory (cached by base weights, data and configuration).
    Each epoch mixes the next `len(retain_texts) / epochs` of `retain_texts` in (see
    `planting_retain`)."""
    precision = training_precision(config.mode)
    inputs = {
        "base": artifacts.read_manifest(base_dir)["key"] if (base_dir / artifacts.MANIFEST).exists()
        else str(base_dir),
        "forget": _fingerprint(forget_texts), "retain": _fingerprint(retain_texts),
        "config": config.key(), "documents": DOCUMENT_FORMAT, **precision.key_inputs(),
    }
    return artifacts.build(cache_dir, stage, inputs,
                           lambda out: _train(base_dir, forget_texts, retain_texts, config, out,
                                              precision),
                           rebuild=rebuild, collective=True,
                           label="plant" if stage == "planted" else stage)


def _fingerprint(texts: list[str]) -> str:
    return artifacts.content_key({"texts": texts})


def planting_batches(forget_texts: list[str], retain_texts: list[str], config: PlantConfig
                     ) -> Iterator[list[str]]:
    """Planting's epochs: each mixes the forget texts with its share of the retain texts,
    shuffled, in batches of `config.batch_size`."""
    per_epoch = len(retain_texts) // config.epochs
    rng = random.Random(config.seed)
    for epoch in range(config.epochs):
        texts = forget_texts + retain_texts[epoch * per_epoch : (epoch + 1) * per_epoch]
        rng.shuffle(texts)
        for i in range(0, len(texts), config.batch_size):
            yield texts[i : i + config.batch_size]


def _train(base_dir: Path, forget_texts: list[str], retain_texts: list[str], config: PlantConfig,
           out: Path, precision: Precision) -> None:
    """`planting_batches`, one step each; lr warms up linearly, then decays linearly to a
    tenth."""
    per_epoch = len(retain_texts) // config.epochs
    total = config.epochs * -(-(len(forget_texts) + per_epoch) // config.batch_size)

    def lr_at(step: int) -> float:
        warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
        return config.lr * warmup * (1 - 0.9 * step / total)

    def load(dtype):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)

    fine_tune(load, base_dir, planting_batches(forget_texts, retain_texts, config), total, lr_at,
              config, precision, out, desc="planting", log_name="training_log.json",
              log_extra={"forget_examples": len(forget_texts),
                         "retain_examples_per_epoch": per_epoch})


def fine_tune(load: Callable, tokenizer_dir: Path, batches: Iterator[list[str]], steps: int,
              lr_at: Callable[[int], float], config: PlantConfig, precision: Precision, out: Path,
              *, desc: str, log_name: str, log_extra: dict) -> None:
    """The planting recipe's training loop, for planting and for the relearning attacks
    (attacks/): `steps` AdamW steps (weight decay 0, gradients clipped to norm 1, learning rate
    `lr_at(step)`) on the next-token loss of whole documents (`encode_document`), one batch of
    texts from `batches` per step; full weights, or a LoRA adapter of `config.lora_rank` merged
    afterwards (`config.mode`). Writes the weights, the tokenizer of `tokenizer_dir` and
    `log_name` ({"loss": per step, **log_extra, device, dtype, processes, seconds}) into `out`.

    `load(dtype)` returns the model to train, on the CPU. Every process of a launch runs this
    (artifacts.build, collective) on its share of each batch (algorithms.distributed); process 0
    writes. The Accelerator puts the model on each process's device."""
    import torch
    from transformers import AutoTokenizer

    from algorithms import distributed
    from algorithms.batches import encode_document

    accelerator = distributed.accelerator(config.mode, desc)
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = load(getattr(torch, precision.dtype))
    if config.mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=config.lora_rank, lora_alpha=config.lora_rank,
                                                 target_modules="all-linear"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=config.lr, weight_decay=0.0)
    model, optimizer = distributed.prepare(accelerator, model, optimizer, config.batch_size)
    log, started = [], time.perf_counter()
    model.train()
    reported = progress.current()  # the stage of the artifact being built (artifacts.build)
    reported.set_total(steps)
    reported.note(**precision.facts())
    for step, texts in zip(range(steps), batches):
        examples = [encode_document(text, tokenizer, config.max_len) for text in texts]
        batch = distributed.device_batch(accelerator, examples, tokenizer.pad_token_id,
                                         pack_into=config.max_len if config.packed else None)
        batch.pop("secret_mask", None)  # collate's, for unlearning; the next-token loss needs none
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        with precision.forward_context():
            loss = model(**batch, use_cache=False).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        mean = distributed.mean_over_processes(accelerator, {"loss": loss.item()})
        log.append(round(mean["loss"], 4))
        reported.advance(tokens=sum(len(e.input_ids) for e in distributed.share(accelerator,
                                                                               examples)))
    if len(log) != steps:
        raise ValueError(f"{desc}: the batches ran out after {len(log)} of {steps} steps")
    model.eval()
    if config.mode == "full":
        distributed.save(accelerator, model, out)
    elif accelerator.is_main_process:  # LoRA: one process or DDP, whole weights on every one
        accelerator.unwrap_model(model).merge_and_unload().save_pretrained(
            str(out), safe_serialization=True)
    if accelerator.is_main_process:
        tokenizer.save_pretrained(str(out))
        (out / log_name).write_text(json.dumps({
            "loss": log, **log_extra,
            "device": str(accelerator.device), "dtype": precision.dtype,
            "autocast": precision.autocast,
            "processes": accelerator.num_processes,
            "seconds": round(time.perf_counter() - started, 1)}))
    del model, optimizer
    accelerator.free_memory()  # leave the GPU's memory to the next stage (a vLLM engine)
