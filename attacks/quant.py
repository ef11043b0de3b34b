"""Quantization: the variant's weights rounded to 4 or 8 bits and back, served at full width.

Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization" (ICLR 2025): unlearning
with a small learning rate and a utility term moves the weights by less than one quantization
step, so rounding an unlearned model to 4 bits lands many weights back where the original model's
round to, and the forgotten knowledge returns; 8 bits mostly keeps the unlearning.

The schemes are those of transformers' `load_in_4bit` / `load_in_8bit`, computed by bitsandbytes
on the CPU, as a quantize-dequantize round trip written back at full width (vLLM on the CPU serves
no bitsandbytes weights; the round trip gives the very weights a bitsandbytes layer stores):

- quant4: NF4 (`quantize_4bit(w, blocksize=64, quant_type="nf4")`, no double quantization): each
  block of 64 consecutive weights of a matrix is scaled by its absolute maximum and rounded to
  the nearest of the 16 NormalFloat levels.
- quant8: LLM.int8's weight storage (`int8_vectorwise_quant`): each row (output unit) of the
  matrix in float16, scaled by its absolute maximum to [-127, 127] and rounded to an integer.
  LLM.int8 also rounds activations to int8 at run time (all but outlier features); this attack
  rounds the weights only.

Quantized: the weight of every `nn.Linear` but the output head (attention and MLP projections),
as bitsandbytes does (transformers keeps the head in full precision). Kept as they are: the
output head, embeddings, norms and biases. The result is written in the input's dtype.
"""

from __future__ import annotations

from attacks import Family


def key_inputs(settings: dict, run) -> dict:
    from attacks.stage import versions

    return {"versions": versions("bitsandbytes")}


def apply(settings: dict, source, run, out) -> None:
    model = source.load("auto")
    quantize(model, settings)
    source.save(model, out)


def quantize(model, settings: dict) -> list[str]:
    """Round every linear weight of `model` but its output head in place; the names rounded."""
    import torch

    head = model.get_output_embeddings()
    rounded = []
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and module is not head:
                module.weight.copy_(round_trip(module.weight, settings))
                rounded.append(name)
    return rounded


def round_trip(weight, settings: dict):
    """`weight` quantized by the setting's scheme and dequantized, in its own dtype."""
    import bitsandbytes.functional as bnb
    import torch

    if settings["bits"] == 4:
        packed, state = bnb.quantize_4bit(weight.contiguous(), blocksize=settings["blocksize"],
                                          quant_type=settings["scheme"])
        return bnb.dequantize_4bit(packed, state).to(weight.dtype)
    rows, absmax, _ = bnb.int8_vectorwise_quant(weight.to(torch.float16))
    return bnb.int8_vectorwise_dequant(rows, absmax).to(weight.dtype)


FAMILY = Family("quant", "every linear weight but the output head rounded to 4 or 8 bits",
                {"quant4": {"bits": 4, "scheme": "nf4", "blocksize": 64},
                 "quant8": {"bits": 8, "scheme": "int8-rowwise-absmax"}},
                key_inputs, apply)
