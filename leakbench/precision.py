"""Where and in what precision the three training loops run: building `tiny`, planting, unlearning.

On CUDA: LoRA over bfloat16 weights, full fine-tuning in float32. On a CPU the weights, the
optimizer and the losses are float32, and where the CPU multiplies bfloat16 natively (AVX-512 BF16
or AMX) the forward pass runs under `torch.autocast` in bfloat16: its matrix products, and through
autograd their gradients, in bfloat16 with float32 accumulation. On this project's 2-core machine
that halves a training step of `tiny` (docs/PERFORMANCE.md, "Training precision"). A CPU without
native bfloat16 would emulate it, slower than float32: it trains in float32.

The precision is part of the key of every trained artifact (`key_inputs`), so weights trained
one way are never reused as if trained the other.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Precision:
    device: str  # "cuda" | "cpu"
    dtype: str  # of the weights while training
    autocast: str | None = None  # of the forward's matrix products; None: no autocast

    def key_inputs(self) -> dict:
        """What an artifact's key records of the precision. Plain float32 records nothing, so
        artifacts trained that way keep the keys they always had."""
        recorded = {"dtype": self.dtype} if self.dtype != "float32" else {}
        if self.autocast is not None:
            recorded["autocast"] = self.autocast
        return recorded

    def facts(self) -> dict:
        """How training runs, for the run's stage records (leakbench.progress)."""
        import torch

        return {"device": self.device, "dtype": self.dtype, "autocast": self.autocast or "none",
                "threads": torch.get_num_threads()}

    def forward_context(self):
        """The context a training forward pass (and the loss) runs in."""
        if self.autocast is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.device, dtype=getattr(torch, self.autocast))


def cpu_precision() -> Precision:
    """Training on this machine's CPU: float32, with bfloat16 autocast where it is native."""
    import torch

    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return Precision("cpu", "float32", "bfloat16" if native else None)


def training_precision(mode: str) -> Precision:
    """The precision of a training run in `mode` ("full" | "lora") on this machine: on CUDA
    when torch sees a device, else on the CPU."""
    import torch

    if torch.cuda.is_available():
        return Precision("cuda", "bfloat16" if mode == "lora" else "float32")
    return cpu_precision()
