"""Training precision: a step of each training loop in float32 and under bfloat16 autocast.

    python bench/training_precision.py [--model tiny|micro] [--cache-dir DIR] [--steps 10]
                                       [--repeat 3] [--docs FILE]

On a CPU with native bfloat16 the suite trains under `torch.autocast` (leakbench.precision). Side
by side in one run, with the suite's torch threads, for the three loops of a cold `tiny` run:
- build: a pretraining step of `tiny`'s shape (16 blocks of 256 random tokens: the shape
  decides the time) on the base model;
- plant: a planting step (16 retain texts, encoded and collated as planting does) on the base;
- unlearn: a GA+KL step (8 forget samples, 8 retain texts, frozen reference) on the planted model.
Each step: forward and loss (in the precision's context), backward, clipping, AdamW. Reported:
seconds per step (median of the steps after the first two, then of --repeat runs, the two
precisions alternating which goes first) and the first step's loss in each (the same batch from
the same weights: the gap is bfloat16's rounding). Needs the model (`tiny` by default) built and
planted in the cache (any benchmark run). Writes the "Training precision" section of
docs/PERFORMANCE.md, or of --docs (tests/test_bench_smoke.py: `micro`, 3 steps, a temporary file).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

from host import description
from training_runs import arguments, only_artifact, timed_steps

from leakbench.docs_section import write_section
from leakbench.precision import Precision
from leakbench.tiny import CONFIGS, TinyConfig

ROOT = Path(__file__).resolve().parents[1]
SECTION = "Training precision"
PRECISIONS = {"float32": Precision("cpu", "float32"),
              "bfloat16 autocast": Precision("cpu", "float32", "bfloat16")}


def step_batches(loop: str, config: TinyConfig, cache_dir: Path, steps: int):
    """(model directory, a function loss(model, reference, i) for step i, needs a reference)."""
    import torch
    from transformers import AutoTokenizer

    from algorithms import get, load_hparams
    from algorithms.batches import collate, encode_document, encode_forget
    from leakbench import corpus
    from leakbench.cases import FORGET_FILE, load_jsonl

    if loop == "build":
        base = only_artifact(cache_dir, f"base-{config.name}")
        blocks = torch.randint(0, config.vocab_size, (steps, config.batch_size, config.seq_len),
                               generator=torch.Generator().manual_seed(0))
        return base, (lambda model, _, i: model(input_ids=blocks[i], labels=blocks[i]).loss), False
    if loop == "plant":
        base = only_artifact(cache_dir, f"base-{config.name}")
        tokenizer = AutoTokenizer.from_pretrained(base)
        examples = [encode_document(t, tokenizer, 256) for t in corpus.retain_texts(16 * steps)]
        batches = [collate(examples[i * 16 : (i + 1) * 16], tokenizer.pad_token_id)
                   for i in range(steps)]

        def plant_loss(model, _, i):
            b = batches[i]
            return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                         labels=b["labels"]).loss
        return base, plant_loss, False
    planted = only_artifact(cache_dir, "planted")
    tokenizer = AutoTokenizer.from_pretrained(planted)
    forget = [encode_forget(s.text, s.span, tokenizer, 256)
              for s in load_jsonl(ROOT / "cases" / FORGET_FILE)[: 8 * steps]]
    retain = [encode_document(t, tokenizer, 256) for t in corpus.retain_texts(8 * steps)]
    pairs = [(collate(forget[i * 8 : (i + 1) * 8], tokenizer.pad_token_id),
              collate(retain[i * 8 : (i + 1) * 8], tokenizer.pad_token_id)) for i in range(steps)]
    kl, hp = get("kl"), replace(load_hparams(config.name, "kl"), stop_forget_nll=None)
    return planted, (lambda model, ref, i: kl.loss(*pairs[i], model, ref, **hp.constants)[0]), True


def time_loop(loop: str, precision: Precision, config: TinyConfig, cache_dir: Path, steps: int
              ) -> tuple[float, float]:
    """(median seconds per step after the first two, the first step's loss)."""
    import torch
    from transformers import AutoModelForCausalLM

    weights, loss_of, needs_reference = step_batches(loop, config, cache_dir, steps)
    model = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32).train()
    reference = (AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32).eval()
                 if needs_reference else None)
    return timed_steps(model, lambda i: loss_of(model, reference, i), steps, precision)


def main() -> None:
    args = arguments(__doc__.splitlines()[0], steps=10)
    import torch

    config = CONFIGS[args.model]
    loops = ("build", "plant", "unlearn")
    per_step = {(loop, name): [] for loop in loops for name in PRECISIONS}
    first_loss = {}
    for r in range(args.repeat):
        for loop in loops:
            names = list(PRECISIONS) if r % 2 == 0 else list(reversed(PRECISIONS))
            for name in names:
                seconds, first_loss[loop, name] = time_loop(loop, PRECISIONS[name], config,
                                                            args.cache_dir, args.steps)
                per_step[loop, name].append(seconds)
                print(f"repeat {r + 1} {loop} {name}: {seconds:.3f} s/step", flush=True)
    rows = ["| loop | float32 s/step | bfloat16 autocast s/step | speed-up "
            "| first-step loss, float32 | first-step loss, autocast |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for loop in loops:
        exact, mixed = (statistics.median(per_step[loop, name]) for name in PRECISIONS)
        rows.append(f"| {loop} | {exact:.3f} | {mixed:.3f} | {exact / mixed:.2f}x "
                    f"| {first_loss[loop, 'float32']:.4f} "
                    f"| {first_loss[loop, 'bfloat16 autocast']:.4f} |")
    text = (f"Command: `python bench/training_precision.py --model {args.model} --steps "
            f"{args.steps} --repeat "
            f"{args.repeat}` ({time.strftime('%Y-%m-%d')}, {description()}, native bfloat16: "
            f"{torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()}, "
            f"{torch.get_num_threads()} torch threads; medians of {args.repeat} runs).\n\n"
            + "\n".join(rows) + "\n")
    print(text)
    write_section(args.docs, SECTION, text)


if __name__ == "__main__":
    main()
