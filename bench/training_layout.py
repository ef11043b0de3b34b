"""Training layout: a step of each training loop with padded or packed batches, and with PyTorch's
fused attention ("sdpa") or transformers' eager attention.

    python bench/training_layout.py [--model tiny|micro] [--cache-dir DIR] [--steps 10]
                                    [--repeat 3] [--docs FILE]

Side by side in one run, in the training precision of this machine (leakbench.precision) and
with the suite's torch threads, for the three loops of a cold `tiny` run:
- build: a pretraining step of the model's shape (blocks of random tokens, no padding: only the
  attention differs);
- plant: planting's first steps (`leakbench.plant.planting_batches` over the forget texts the
  pipeline plants and planting's retain texts), each batch padded (`collate`) or packed into
  rows of the recipe's max_len (`pack`);
- unlearn: a GA+KL step on the planted model (padded, as unlearning always is).
Each step: forward and loss, backward, clipping, AdamW. Reported: seconds per step (median of the
steps after the first two, then of --repeat runs, the ways in turn, the first one rotating), the
tokens the model computed per step against the real ones, and the first step's loss (the same
batch from the same weights: equal up to rounding when the layout is exact). Needs the model
built and planted in the cache (any benchmark run). Writes the "Training layout" section of
docs/PERFORMANCE.md, or of --docs (tests/test_bench_smoke.py: `micro`, 3 steps).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from itertools import islice
from pathlib import Path

from host import OtherLoad, description
from training_runs import arguments, only_artifact, timed_steps

from leakbench.docs_section import write_section
from leakbench.precision import cpu_precision
from leakbench.tiny import CONFIGS, TinyConfig

SECTION = "Training layout"
WAYS = {"padded, sdpa": ("sdpa", False), "padded, eager": ("eager", False),
        "packed, sdpa": ("sdpa", True), "packed, eager": ("eager", True)}
LOOPS = {"build": ("padded, sdpa", "padded, eager"), "plant": tuple(WAYS),
         "unlearn": ("padded, sdpa", "padded, eager")}


def batches(loop: str, packed: bool, config: TinyConfig, cache_dir: Path, steps: int):
    """(model directory, the model's keyword inputs per step, real tokens per step, reference
    needed): the loss is `model(**inputs).loss`, or GA+KL's where a reference is needed."""
    import torch
    from transformers import AutoTokenizer

    from algorithms.batches import collate, encode_document, encode_forget, pack
    from leakbench import corpus, models
    from leakbench.committed_cases import CASES_DIR
    from leakbench.plant import plant_config, planting_batches, planting_retain
    from leakbench.probes import PrivacyData

    if loop == "build":
        base = only_artifact(cache_dir, f"base-{config.name}")
        blocks = torch.randint(0, config.vocab_size, (steps, config.batch_size, config.seq_len),
                               generator=torch.Generator().manual_seed(0))
        return base, [{"input_ids": b, "labels": b} for b in blocks], blocks[0].numel(), False
    recipe = plant_config(models.family(models.lookup(config.name)))
    data = PrivacyData.load(CASES_DIR, recipe.forget_samples)
    if loop == "plant":
        base = only_artifact(cache_dir, f"base-{config.name}")
        tokenizer = AutoTokenizer.from_pretrained(base)
        forget = [s.text for s in data.forget]
        texts = islice(planting_batches(forget, planting_retain(len(forget), recipe), recipe),
                       steps)
        examples = [[encode_document(t, tokenizer, recipe.max_len) for t in batch]
                    for batch in texts]
        layout = (lambda e: pack(e, tokenizer.pad_token_id, recipe.max_len)) if packed else (
            lambda e: {k: v for k, v in collate(e, tokenizer.pad_token_id).items()
                       if k != "secret_mask"})
        real = statistics.mean(sum(len(x.input_ids) for x in e) for e in examples)
        return base, [layout(e) for e in examples], real, False
    planted = only_artifact(cache_dir, "planted")
    tokenizer = AutoTokenizer.from_pretrained(planted)
    forget = [encode_forget(s.text, s.span, tokenizer, 256) for s in data.forget[: 8 * steps]]
    retain = [encode_document(t, tokenizer, 256) for t in corpus.retain_texts(8 * steps)]
    pairs = [(collate(forget[i * 8 : (i + 1) * 8], tokenizer.pad_token_id),
              collate(retain[i * 8 : (i + 1) * 8], tokenizer.pad_token_id)) for i in range(steps)]
    real = statistics.mean(int(f["attention_mask"].sum() + r["attention_mask"].sum())
                           for f, r in pairs)
    return planted, pairs, real, True


def time_loop(loop: str, way: str, config: TinyConfig, cache_dir: Path, steps: int
              ) -> tuple[float, float, float, float]:
    """(median seconds per step after the first two, first-step loss, tokens computed per step,
    real tokens per step)."""
    import torch
    from transformers import AutoModelForCausalLM

    from algorithms import get, load_hparams

    attention, packed = WAYS[way]
    weights, inputs, real, needs_reference = batches(loop, packed, config, cache_dir, steps)
    precision, options = cpu_precision(), {"dtype": torch.float32, "attn_implementation": attention}
    model = AutoModelForCausalLM.from_pretrained(weights, **options).train()
    if needs_reference:
        reference = AutoModelForCausalLM.from_pretrained(weights, **options)
        kl, hp = get("kl"), replace(load_hparams(config.name, "kl"), stop_forget_nll=None)

        def loss_of(i):
            return kl.loss(*inputs[i], model, reference.eval(), **hp.constants)[0]
        computed = statistics.mean(f["input_ids"].numel() + r["input_ids"].numel()
                                   for f, r in inputs)
    else:
        def loss_of(i):
            return model(**inputs[i], use_cache=False).loss
        computed = statistics.mean(b["input_ids"].numel() for b in inputs)
    return (*timed_steps(model, loss_of, steps, precision), computed, real)


def main() -> None:
    args = arguments(__doc__.splitlines()[0], steps=10)
    import torch

    config, load = CONFIGS[args.model], OtherLoad()
    per_step = {(loop, way): [] for loop, ways in LOOPS.items() for way in ways}
    facts = {}
    for r in range(args.repeat):
        for loop, ways in LOOPS.items():
            for way in ways[r % len(ways):] + ways[: r % len(ways)]:
                seconds, *facts[loop, way] = time_loop(loop, way, config, args.cache_dir,
                                                       args.steps)
                per_step[loop, way].append(seconds)
                print(f"repeat {r + 1} {loop} {way}: {seconds:.3f} s/step", flush=True)
    rows = ["| loop | batches, attention | s/step | vs padded, sdpa | tokens computed / real "
            "| first-step loss |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for loop, ways in LOOPS.items():
        before = statistics.median(per_step[loop, ways[0]])
        for way in ways:
            median = statistics.median(per_step[loop, way])
            first_loss, computed, real = facts[loop, way]
            rows.append(f"| {loop} | {way} | {median:.3f} | {before / median:.2f}x "
                        f"| {computed:,.0f} / {real:,.0f} | {first_loss:.4f} |")
    precision = cpu_precision()
    text = (f"Command: `python bench/training_layout.py --model {args.model} --steps {args.steps}"
            f" --repeat {args.repeat}` ({time.strftime('%Y-%m-%d')}; {description()}; "
            f"{load.note()}; autocast: {precision.autocast or 'none'}, {torch.get_num_threads()} "
            f"torch threads; medians of {args.repeat} run(s)). Build's blocks are full, with "
            "nothing to pad or pack; unlearning's losses read each document's own tokens and "
            "stay padded. The suite trains with sdpa, and packs planting's batches where the "
            "model family's recipe says so (`PlantConfig.packed`: `micro`, not `tiny`).\n\n"
            + "\n".join(rows) + "\n")
    print(text)
    write_section(args.docs, SECTION, text)


if __name__ == "__main__":
    main()
