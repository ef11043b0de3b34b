"""`accelerate` in the two training loops (leakbench.plant and algorithms.loop).

In a plain process (python, pytest and its xdist workers) the Accelerator has one process on its
one device and every helper here changes nothing: the same batches, the same losses, the same
saved files as the loops had without accelerate. Under `accelerate launch` with N processes:

- each process trains on its share of every batch (`share`), so a step still sees
  `batch_size` examples whatever N is, and the gradients of the shares are averaged (DDP, FSDP,
  DeepSpeed all average). The average of per-share token means equals the batch's token mean
  only when the shares hold as many tokens: close, not exact.
- what a loop logs and decides on (loss, forget NLL) is the mean over the processes
  (`mean_over_processes`), so that every process stops at the same step;
- only process 0 writes (`save`).

LoRA runs on one process or under DDP, where every process holds all the weights. FSDP and
DeepSpeed shard them, and planting merges its adapter into the weights, which needs them whole in
one place: LoRA is refused there (`accelerator`). Full-parameter training is what they are for.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch


class UnsupportedLaunch(ValueError):
    """The accelerate configuration cannot run this stage; the message is one line saying what
    would."""


def accelerator(mode: str, stage: str):
    """The Accelerator of one training run in `mode` ("full" | "lora"), for `stage` (named in
    errors). The configuration comes from `accelerate launch` (its environment), else none."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    acc = Accelerator()
    sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if mode == "lora" and sharded:
        raise UnsupportedLaunch(
            f"accelerate config: {stage} trains LoRA, which runs on one process or under DDP, "
            f"not under {acc.distributed_type.value}; launch it on one process or with "
            "distributed_type: MULTI_GPU, or set its mode to \"full\"")
    if acc.distributed_type == DistributedType.FSDP and not acc.is_fsdp2:
        raise UnsupportedLaunch(
            "accelerate config: FSDP version 1 is not supported (the optimizer is built before "
            "the model is wrapped); set fsdp_version: 2")
    return acc


def prepare(acc, model, optimizer, batch_size: int):
    """`model` and `optimizer` prepared together (FSDP2 requires it: it swaps the optimizer's
    parameters for the sharded ones). DeepSpeed takes the per-process batch size from its
    config or from a DataLoader; these loops have none, so an "auto" value is set here."""
    from accelerate.utils import DistributedType

    if acc.distributed_type == DistributedType.DEEPSPEED:
        plugin = acc.state.deepspeed_plugin
        if plugin.is_auto("train_micro_batch_size_per_gpu"):
            plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = math.ceil(
                batch_size / acc.num_processes)
    return acc.prepare(model, optimizer)


def prepare_reference(acc, reference):
    """The frozen reference model, on this process's device, for inference only (not wrapped
    for training, not sharded: every process holds a whole copy).

    Its weights are sent from process 0 to the others: with FSDP's RAM-efficient loading
    (fsdp_cpu_ram_efficient_loading) transformers loads the weights on process 0 alone and
    zeros elsewhere, which FSDP repairs for the trained model but nothing repairs for this one.
    DeepSpeed's ZeRO-3 init partitions every model loaded under it, this one too, and a
    partitioned model outside a DeepSpeed engine has no weights to run with: refused."""
    from accelerate.utils import DistributedType, broadcast

    deepspeed = acc.distributed_type == DistributedType.DEEPSPEED
    if deepspeed and acc.state.deepspeed_plugin.zero3_init_flag:
        raise UnsupportedLaunch(
            "accelerate config: the reference model of kl, npo and selective cannot be loaded "
            "under DeepSpeed's ZeRO-3 init; set zero3_init_flag: false")
    reference = acc.prepare_model(reference, device_placement=True, evaluation_mode=True)
    if acc.num_processes > 1:
        broadcast(list(reference.state_dict().values()), from_process=0)
    return reference.eval()


def share(acc, batch: list) -> list:
    """This process's part of `batch`: all of it on one process. With N processes, contiguous
    parts of equal size; where the batch does not divide by N, its last example is repeated to
    fill the short parts (every process must take part in every step)."""
    with acc.split_between_processes(batch, apply_padding=True) as part:
        return part


def device_batch(acc, examples: list, pad_id: int, *, pack_into: int | None = None
                 ) -> dict[str, torch.Tensor]:
    """This process's share of `examples` (`share`) on its device: collated, or packed into rows
    of `pack_into` tokens where that is given (algorithms.batches.pack)."""
    from algorithms.batches import collate, pack

    part = share(acc, examples)
    batch = collate(part, pad_id) if pack_into is None else pack(part, pad_id, pack_into)
    return {k: v.to(acc.device) for k, v in batch.items()}


def mean_over_processes(acc, values: dict[str, float | None]) -> dict[str, float | None]:
    """`values` averaged over the processes (None stays None); unchanged on one process (the
    float64 round trip is exact). Every process must pass the same names with values: the
    losses log the same terms on every batch, except selective's "context", absent from a
    batch whose texts are secret from start to end (none of the generated forget set's)."""
    names = [name for name, value in values.items() if value is not None]
    numbers = torch.tensor([values[name] for name in names], dtype=torch.float64,
                           device=acc.device)
    return {**values, **dict(zip(names, acc.reduce(numbers, reduction="mean").tolist()))}


def save(acc, model, out: Path) -> None:
    """Write `model` to `out` from process 0: full weights, or a PEFT model's adapter. Every
    process must call it: under FSDP and ZeRO-3, gathering the weights is collective."""
    state = acc.get_state_dict(model)
    if acc.is_main_process:
        acc.unwrap_model(model).save_pretrained(str(out), state_dict=state,
                                                safe_serialization=True)
