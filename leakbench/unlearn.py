"""Unlearned variants: the planted model after one algorithm, as a LoRA adapter or full weights.

A `Variant` is what the serving stage needs: the weights an engine loads and, for LoRA variants,
the adapter it applies per request. `none` is the planted model itself; `retrain` is planting again
without the forget set (leakbench.plant); every other algorithm runs the shared loop of
`algorithms.loop` with its training settings from `algorithms/hparams.toml` and the method
constants its loss declares (`algorithms.load_hparams`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import algorithms
from algorithms.batches import DOCUMENT_FORMAT
from algorithms.hparams import Hyper, load_hparams
from leakbench import artifacts, progress
from leakbench.cases import Sample
from leakbench.plant import PlantConfig, plant, planting_retain
from leakbench.precision import Precision, training_precision

# Before the algorithm registry (issue #21) a variant's key held these five method constants for
# every algorithm, the ones its loss does not use at these values: keyed the same way, the
# variants cached since stay valid.
KEYED_CONSTANTS = {"gamma": 1.0, "alpha": 1.0, "beta": 0.1, "delta": 0.0, "context_weight": 1.0}


def key_hparams(hp: Hyper) -> dict:
    """The hyper-parameters as a variant's key holds them: one flat table."""
    training = {k: v for k, v in asdict(hp).items() if k != "constants"}
    return {**KEYED_CONSTANTS, **training, **hp.constants}


@dataclass(frozen=True)
class Variant:
    algorithm: str
    weights: Path  # what the engine loads
    adapter: Path | None  # LoRA adapter applied per request, or None
    key: str  # content key: completions are cached under it
    seconds_per_forget_sample: float | None = None


def build_variant(algorithm: str, *, base: Path, planted: Path, forget: list[Sample],
                  retain_texts: list[str], family: str, plant_config: PlantConfig,
                  cache_dir: Path, rebuild: bool = False, hp: Hyper | None = None,
                  label: str | None = None, after: Variant | None = None) -> Variant:
    """`algorithm`'s variant of the planted model, built unless cached; a loss algorithm's with
    `hp` (a tuning trial's settings) or else the family's (hparams.toml). `after`: a variant of
    the same algorithm to go on from (the previous deletion request's, leakbench.deletion_requests)
    instead of the planted model: its full weights, or its LoRA adapter trained further."""
    spec = algorithms.get(algorithm)
    if spec.kind == "identity":
        return Variant(algorithm, planted, None, artifacts.read_manifest(planted)["key"])
    if spec.kind == "retrain":
        retrained = plant(base, [], planting_retain(len(forget), plant_config),
                          plant_config, cache_dir, stage="retrain", rebuild=rebuild)
        log = json.loads((retrained / "training_log.json").read_text())
        return Variant(algorithm, retrained, None, artifacts.read_manifest(retrained)["key"],
                       log["seconds"] / max(1, len(forget)))
    hp = hp or load_hparams(family, algorithm)
    precision = training_precision(hp.mode)
    inputs = {"planted": artifacts.read_manifest(planted)["key"], "algorithm": algorithm,
              "hparams": key_hparams(hp), "forget": [s.id for s in forget],
              "retain": artifacts.content_key({"texts": retain_texts}),
              "documents": DOCUMENT_FORMAT, **precision.key_inputs()}
    if after is not None:
        inputs["after"] = after.key
    source = after.weights if after is not None else planted
    adapter = after.adapter if after is not None else None
    out = artifacts.build(cache_dir, "variant", inputs,
                          lambda d: _unlearn_into(source, spec, hp, forget, retain_texts, d,
                                                  precision, adapter),
                          rebuild=rebuild, collective=True,
                          label=label or f"unlearn {algorithm}")
    log = json.loads((out / "unlearning_log.json").read_text())
    adapter = out if hp.mode == "lora" else None
    return Variant(algorithm, planted if adapter else out, adapter,
                   artifacts.read_manifest(out)["key"], log["seconds"] / max(1, len(forget)))


def _unlearn_into(planted: Path, spec: algorithms.Algorithm, hp: Hyper, forget: list[Sample],
                  retain_texts: list[str], out: Path, precision: Precision,
                  adapter: Path | None = None) -> None:
    """Every process of a launch runs this (artifacts.build, collective); process 0 writes.
    The models are loaded on the CPU: the loop's Accelerator puts them on each process's
    device. With an `adapter` (a LoRA variant gone on from), it is trained further and the
    reference is the planted model with it merged: the model before this unlearning."""
    import torch
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from algorithms.batches import encode_document, encode_forget
    from algorithms.loop import unlearn

    tokenizer = AutoTokenizer.from_pretrained(planted)
    dtype = getattr(torch, precision.dtype)
    model = AutoModelForCausalLM.from_pretrained(planted, dtype=dtype)
    reference = None
    if spec.needs_reference:
        reference = AutoModelForCausalLM.from_pretrained(planted, dtype=dtype)
        if adapter is not None:
            from peft import PeftModel

            reference = PeftModel.from_pretrained(reference, adapter).merge_and_unload()
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    elif hp.mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=hp.lora_rank, lora_alpha=hp.lora_alpha,
                                                 target_modules="all-linear"))
    progress.current().note(**precision.facts())
    max_len = 256
    forget_examples = [encode_forget(s.text, s.span, tokenizer, max_len) for s in forget]
    retain_examples = [encode_document(t, tokenizer, max_len) for t in retain_texts]
    unlearn(model, reference, forget_examples, retain_examples, spec, hp,
            pad_id=tokenizer.pad_token_id, log_path=out / "unlearning_log.json", save_dir=out,
            forward_context=precision.forward_context)
    if hp.mode == "full" and PartialState().is_main_process:
        tokenizer.save_pretrained(str(out))
    del model, reference
    torch.cuda.empty_cache()  # leave the GPU's memory to the next stage (a vLLM engine)
