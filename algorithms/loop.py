"""The one training loop every loss algorithm runs in, readable top to bottom.

Per epoch: shuffle the forget examples and the retain examples (independently, seeded by
hp.seed), cut both into batches of hp.batch_size, and pair forget batch i with retain batch
i mod (number of retain batches), so retain data cycles when it is smaller. Per step: the
algorithm's loss with its method constants (hp.constants), backward, gradient clipping to
hp.grad_clip, one AdamW step (constant lr hp.lr, no weight decay). It stops after hp.epochs, at
hp.max_steps, or early once a step's mean forget NLL exceeds hp.stop_forget_nll.

The model may be a plain transformers model (full fine-tuning) or a PEFT-wrapped one (LoRA): the
optimizer takes whatever parameters require grad. The reference, when the algorithm needs one, is
a separate frozen copy of the model before unlearning; it runs in eval mode under no_grad.

An `accelerate` Accelerator prepares the model, the optimizer and the reference, and runs the
backward pass and the clipping (algorithms.distributed): in a plain process that changes nothing;
under `accelerate launch` each process trains on its share of every batch and the logged values
are means over the processes.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from algorithms import Algorithm, distributed
from algorithms.batches import Example
from algorithms.hparams import Hyper
from leakbench import progress
from leakbench.atomic import write_atomically


def _batches(examples: list[Example], size: int, rng: random.Random) -> list[list[Example]]:
    order = list(examples)
    rng.shuffle(order)
    return [order[i : i + size] for i in range(0, len(order), size)]


def _write_json_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(data, indent=1))


def unlearn(model, reference, forget: list[Example], retain: list[Example],
            algorithm: Algorithm, hp: Hyper, *, pad_id: int, log_path: Path | None = None,
            save_dir: Path | None = None,
            forward_context: Callable[[], contextlib.AbstractContextManager]
            = contextlib.nullcontext) -> dict:
    """Unlearn `forget` from `model` in place. Returns (and writes to log_path, if given) the
    summary and one record per step: {"step", "forget", "retain", "loss", ...terms}. With
    `save_dir`, the unlearned model is saved there (a PEFT model's adapter, else full weights):
    here, because sharded weights are gathered through the prepared model. Each step's loss is
    computed inside `forward_context()` (leakbench.precision: autocast on a bfloat16 CPU)."""
    if algorithm.kind != "loss":
        raise ValueError(f"algorithm {algorithm.name!r} is of kind {algorithm.kind!r}: it has no "
                         "loss to train (the pipeline handles 'none' and 'retrain')")
    if not forget:
        raise ValueError("the forget set is empty")
    if algorithm.needs_retain and not retain:
        raise ValueError(f"{algorithm.name} needs retain examples and got none")
    if algorithm.needs_reference:
        if reference is None:
            raise ValueError(f"{algorithm.name} needs a reference model (a frozen copy)")
        if reference is model:
            raise ValueError("the reference must be a separate copy of the model, not the model")
        reference.eval()
    else:
        reference = None

    torch.manual_seed(hp.seed)
    rng = random.Random(hp.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no parameter that requires grad")
    accelerator = distributed.accelerator(hp.mode, f"unlearning with {algorithm.name}")
    optimizer = torch.optim.AdamW(params, lr=hp.lr, weight_decay=0.0)
    was_training = model.training
    model, optimizer = distributed.prepare(accelerator, model, optimizer, hp.batch_size)
    if reference is not None:
        reference = distributed.prepare_reference(accelerator, reference)

    steps_per_epoch = math.ceil(len(forget) / hp.batch_size)
    total_steps = hp.epochs * steps_per_epoch
    if hp.max_steps is not None:
        total_steps = min(total_steps, hp.max_steps)
    records: list[dict] = []
    stop_reason = None
    started = time.perf_counter()
    model.train()
    reported = progress.current()  # the stage of the variant being built (artifacts.build)
    reported.set_total(total_steps)
    for epoch in range(hp.epochs):
        forget_batches = _batches(forget, hp.batch_size, rng)
        retain_batches = _batches(retain, hp.batch_size, rng) if algorithm.needs_retain else []
        for i, forget_batch in enumerate(forget_batches):
            batch_forget = distributed.device_batch(accelerator, forget_batch, pad_id)
            batch_retain = None
            if retain_batches:
                retain_batch = retain_batches[i % len(retain_batches)]
                batch_retain = distributed.device_batch(accelerator, retain_batch, pad_id)

            with forward_context():
                total, logged = algorithm.loss(batch_forget, batch_retain, model, reference,
                                               **hp.constants)
            logged = distributed.mean_over_processes(accelerator, {"loss": total.item(), **logged})
            if not math.isfinite(logged["loss"]):
                raise FloatingPointError(f"{algorithm.name}: loss {logged['loss']} at step "
                                         f"{len(records) + 1}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(total)
            accelerator.clip_grad_norm_(model.parameters(), hp.grad_clip)
            optimizer.step()

            record = {"step": len(records) + 1, "epoch": epoch, **logged}
            records.append(record)
            tokens = batch_forget["attention_mask"].sum()
            if batch_retain is not None:
                tokens = tokens + batch_retain["attention_mask"].sum()
            reported.advance(tokens=int(tokens))
            if hp.stop_forget_nll is not None and logged["forget"] > hp.stop_forget_nll:
                stop_reason = "stop_forget_nll"
                break
            if hp.max_steps is not None and len(records) >= hp.max_steps:
                stop_reason = "max_steps"
                break
        if stop_reason is not None:
            break
    model.train(was_training)
    if save_dir is not None:
        distributed.save(accelerator, model, save_dir)

    result = {
        "algorithm": algorithm.name,
        "hparams": asdict(hp),
        "steps": len(records),
        "seconds": round(time.perf_counter() - started, 3),
        "stopped_early": stop_reason == "stop_forget_nll",
        "stop_reason": stop_reason or "epochs",
        "processes": accelerator.num_processes,  # each trained on its share of every batch
        "records": records,
    }
    if log_path is not None and accelerator.is_main_process:
        _write_json_atomically(Path(log_path), result)
    accelerator.free_memory()  # a DeepSpeed engine goes now, not at some later garbage collection
    return result
