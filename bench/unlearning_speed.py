"""Unlearning speed: seconds per forget sample of every loss algorithm, full and LoRA, and the
shared training loop's tokens per second against a plain PyTorch loop, side by side.

    python bench/unlearning_speed.py [--model micro] [--repeat 3] [--max-steps 30]
                                     [--threads 0] [--cache-dir DIR]

All runs start from the planted model of --model (built by the pipeline, or found in the cache)
and use the forget set and retain set a benchmark run on that model uses.

1. Per algorithm: every algorithm of kind "loss" in algorithms.registry(), with the model family's
   hyper-parameters (algorithms/hparams.toml) and `mode` set to "full" and to "lora"
   (`dataclasses.replace`), capped at --max-steps optimizer steps and with the early stop off so
   that every run does the same work. Each run is the suite's own unlearning step
   (`leakbench.unlearn._unlearn_into`: load, encode, `algorithms.loop.unlearn`, save into a
   temporary directory). Timed: the loop's own `seconds` (what the suite reports per forget
   sample; loading, encoding and saving are not in it). Reported: seconds per step, seconds per
   forget example processed, and the projection to a full run of the family's settings (its
   epochs and its own max_steps over the whole forget set), divided by the forget set's size: the
   `s/forget sample` the suite's report shows.
2. Loop vs plain: GA with the family's hyper-parameters, --max-steps steps.
   `algorithms.loop.unlearn` against a hand-written loop over the same batches (the loop's
   seeded shuffle, the same `collate`), the same fresh copy of the model (same LoRA
   initialization), AdamW (same lr, no weight decay): forward, GA loss (`-gamma *
   cross_entropy`), zero_grad, backward, clip, step; no logging, no progress bar, no checks.
   Both timed from outside the call, optimizer creation included. Tokens = real forget tokens
   processed. Goal (issue 8): the shared loop within 1.1x of the plain loop.

Median of --repeat runs; in part 2 the two loops alternate which goes first. Torch runs with
--threads threads (0: torch's default, what the suite uses). Writes the "Unlearning speed" section
of docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from generation import ROOT, load_data, planted_variant
from host import OtherLoad, description

import algorithms
from algorithms.hparams import Hyper, load_hparams
from leakbench import corpus, models
from leakbench.cases import Sample
from leakbench.docs_section import write_section
from leakbench.options import parse_cache_dir
from leakbench.precision import Precision, training_precision

PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
SECTION = "Unlearning speed"
GOAL = 1.1
MAX_LEN = 256  # as leakbench.unlearn._unlearn_into
LOOP_ALGORITHM = "ga"


def loss_algorithms() -> list[str]:
    return [name for name, a in algorithms.registry().items() if a.kind == "loss"]


def capped(hp: Hyper, max_steps: int | None, **changes) -> Hyper:
    """`hp` with `changes`, at most `max_steps` steps (None: the epochs decide), no early stop."""
    return replace(hp, max_steps=max_steps, stop_forget_nll=None, **changes)


def unlearn_once(planted: Path, algorithm: str, hp: Hyper, forget: list[Sample],
                 retain: list[str], out: Path) -> dict:
    """The suite's unlearning step (leakbench.unlearn._unlearn_into) into `out`; its log."""
    from leakbench.unlearn import _unlearn_into

    started = time.perf_counter()
    _unlearn_into(planted, algorithms.get(algorithm), hp, forget, retain, out,
                  training_precision(hp.mode))
    log = json.loads((out / "unlearning_log.json").read_text())
    log["wall"] = time.perf_counter() - started
    return log


def full_run_steps(hp: Hyper, samples: int) -> int:
    """The optimizer steps a suite run of `hp` does over `samples` forget samples (no early
    stop)."""
    steps = hp.epochs * math.ceil(samples / hp.batch_size)
    return min(steps, hp.max_steps) if hp.max_steps is not None else steps


def examples_processed(hp: Hyper, samples: int, steps: int) -> int:
    """Forget examples in the first `steps` batches (the last batch of an epoch may be short)."""
    sizes = [min(hp.batch_size, samples - i) for i in range(0, samples, hp.batch_size)]
    return sum((sizes * hp.epochs)[:steps])


def per_algorithm(planted: Path, family: str, forget: list[Sample], retain: list[str],
                  max_steps: int, repeat: int) -> list[dict]:
    rows = []
    for algorithm in loss_algorithms():
        family_hp = load_hparams(family, algorithm)
        for mode in ("full", "lora"):
            hp = capped(family_hp, max_steps, mode=mode)
            logs, failure = [], None
            for _ in range(repeat):
                with tempfile.TemporaryDirectory(prefix="leakbench-unlearn-") as tmp:
                    try:
                        logs.append(unlearn_once(planted, algorithm, hp, forget, retain,
                                                 Path(tmp)))
                    except FloatingPointError as err:
                        failure = str(err)
                        break
            if failure:
                rows.append({"algorithm": algorithm, "mode": mode, "failure": failure})
                print(f"{algorithm} {mode}: {failure}", flush=True)
                continue
            steps = logs[0]["steps"]
            seconds = statistics.median(log["seconds"] for log in logs)
            per_step = seconds / steps
            suite_steps = full_run_steps(replace(family_hp, mode=mode), len(forget))
            rows.append({
                "algorithm": algorithm, "mode": mode, "steps": steps, "seconds": seconds,
                "wall": statistics.median(log["wall"] for log in logs), "per_step": per_step,
                "per_example": seconds / examples_processed(hp, len(forget), steps),
                "suite_steps": suite_steps,
                "per_sample": per_step * suite_steps / len(forget),
            })
            print(f"{algorithm} {mode}: {steps} steps, {seconds:.2f} s", flush=True)
    return rows


def loop_batches(examples: list, hp: Hyper, steps: int) -> list[list]:
    """The forget batches algorithms.loop.unlearn takes, in its order: per epoch a shuffle by a
    random.Random(hp.seed) that carries over epochs, cut into hp.batch_size."""
    rng, batches = random.Random(hp.seed), []
    for _ in range(hp.epochs):
        order = list(examples)
        rng.shuffle(order)
        batches += [order[i : i + hp.batch_size] for i in range(0, len(order), hp.batch_size)]
    return batches[:steps]


def plain_loop(model, batches: list[list], hp: Hyper, pad_id: int, precision: Precision) -> float:
    """Hand-written GA: the same batches, AdamW, forward and loss (in the suite's precision),
    backward, clip, step."""
    import torch
    import torch.nn.functional as F

    from algorithms.batches import collate

    started = time.perf_counter()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.lr, weight_decay=0.0)
    device = params[0].device
    model.train()
    for examples in batches:
        batch = {k: v.to(device) for k, v in collate(examples, pad_id).items()}
        with precision.forward_context():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           use_cache=False).logits
            nll = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(),
                                  batch["labels"][:, 1:].flatten(), ignore_index=-100)
            loss = -hp.constants["gamma"] * nll
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, hp.grad_clip)
        optimizer.step()
    return time.perf_counter() - started


def loop_vs_plain(planted: Path, family: str, forget: list[Sample], max_steps: int,
                  repeat: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from algorithms.batches import encode_forget
    from algorithms.loop import unlearn

    hp = capped(load_hparams(family, LOOP_ALGORITHM), max_steps)
    precision = training_precision(hp.mode)
    tokenizer = AutoTokenizer.from_pretrained(planted)
    examples = [encode_forget(s.text, s.span, tokenizer, MAX_LEN) for s in forget]

    def fresh_model():
        torch.manual_seed(hp.seed)  # the same LoRA initialization for both loops
        model = AutoModelForCausalLM.from_pretrained(planted,
                                                     dtype=getattr(torch, precision.dtype))
        model = model.to(precision.device)
        if hp.mode == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=hp.lora_rank, lora_alpha=hp.lora_alpha,
                                                     target_modules="all-linear"))
        return model

    def run_loop() -> tuple[float, object]:
        model = fresh_model()
        started = time.perf_counter()
        unlearn(model, None, examples, [], algorithms.get(LOOP_ALGORITHM), hp,
                pad_id=tokenizer.pad_token_id, forward_context=precision.forward_context)
        return time.perf_counter() - started, model

    def run_plain() -> tuple[float, object]:
        model = fresh_model()
        return plain_loop(model, batches, hp, tokenizer.pad_token_id, precision), model

    steps = full_run_steps(hp, len(examples))
    batches = loop_batches(examples, hp, steps)
    tokens = sum(len(e.input_ids) for batch in batches for e in batch)
    times = {"loop": [], "plain": []}
    difference = 0.0
    for i in range(repeat):
        models_of = {}
        for way in (("loop", "plain") if i % 2 == 0 else ("plain", "loop")):
            seconds, models_of[way] = run_loop() if way == "loop" else run_plain()
            times[way].append(seconds)
        with torch.no_grad():  # same work: the two end at (nearly) the same weights
            difference = max(difference, max(
                (a - b).abs().max().item() for a, b in zip(models_of["loop"].parameters(),
                                                          models_of["plain"].parameters())))
        print(f"repeat {i + 1}: loop {times['loop'][-1]:.2f} s, plain "
              f"{times['plain'][-1]:.2f} s", flush=True)
    return {"hp": hp, "steps": steps, "tokens": tokens, "difference": difference,
            "loop": statistics.median(times["loop"]), "plain": statistics.median(times["plain"]),
            "precision": precision}


def with_autocast(precision: Precision) -> str:
    return f" with {precision.autocast} autocast" if precision.autocast else ""


def section(args, host: str, threads: int, forget_count: int, rows: list[dict],
            versus: dict) -> str:
    ratio = versus["loop"] / versus["plain"]
    hp = versus["hp"]
    table = ["| algorithm | mode | steps timed | loop s | s/step | s per forget example "
             "| projected s/forget sample (steps of a suite run) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "failure" in r:
            table.append(f"| {r['algorithm']} | {r['mode']} | failed: {r['failure']} "
                         "| | | | |")
            continue
        table.append(f"| {r['algorithm']} | {r['mode']} | {r['steps']} | {r['seconds']:.3g} "
                     f"| {r['per_step']:.3g} | {r['per_example']:.3g} "
                     f"| {r['per_sample']:.3g} ({r['suite_steps']}) |")
    return "\n".join([
        f"Goal: the shared loop (`algorithms.loop.unlearn`) within {GOAL}x of a plain PyTorch "
        f"loop on the same model and batches. Measured: {ratio:.3f}x, goal "
        f"{'met' if ratio <= GOAL else 'missed'}.",
        "",
        f"- Machine: {host}; torch threads: {threads}.",
        f"- Command: `{shlex.join(['python', 'bench/unlearning_speed.py', *sys.argv[1:]])}` "
        f"({time.strftime('%Y-%m-%d')}); model `{args.model}` (planted), {forget_count} forget "
        f"samples (what a benchmark run on it unlearns); median of {args.repeat} repeat(s); "
        f"training on {versus['precision'].device} in {versus['precision'].dtype}"
        f"{with_autocast(versus['precision'])}.",
        f"- Per algorithm: the family's hyper-parameters (algorithms/hparams.toml) with `mode` "
        f"replaced, at most {args.max_steps} steps, early stop off; the time is the loop's own "
        "`seconds` from its log (load, encoding and save are not in it). The last column "
        "projects seconds per step to the steps a suite run does (family's epochs and max_steps "
        "over the whole forget set) and divides by the forget samples: the report's "
        "`s/forget sample`.",
        f"- Loop vs plain: {LOOP_ALGORITHM}, {hp.mode}, batch {hp.batch_size}, lr {hp.lr}, "
        f"{versus['steps']} steps, {versus['tokens']:,} forget tokens; each timed from outside "
        "the call (optimizer creation included, model load not); the plain loop does forward, "
        "GA loss, zero_grad, backward, clip, AdamW step, nothing else; largest weight "
        f"difference between the two after the run: {versus['difference']:.2e}.",
        "",
        "| loop | seconds | tokens/s |",
        "| --- | ---: | ---: |",
        f"| `algorithms.loop.unlearn` | {versus['loop']:.2f} "
        f"| {versus['tokens'] / versus['loop']:,.0f} |",
        f"| plain PyTorch | {versus['plain']:.2f} | {versus['tokens'] / versus['plain']:,.0f} |",
        "",
        *table,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="micro")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default, as the suite runs)")
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""))
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    host, load = description(), OtherLoad()
    spec = models.lookup(args.model)
    family = models.family(spec)
    data = load_data(spec)
    planted = planted_variant(spec, data, args.cache_dir).weights
    retain = corpus.retain_texts(len(data.forget))  # as leakbench.pipeline.build_variants
    versus = loop_vs_plain(planted, family, data.forget, args.max_steps, args.repeat)
    rows = per_algorithm(planted, family, data.forget, retain, args.max_steps, args.repeat)
    text = section(args, f"{host}; {load.note()}", torch.get_num_threads(), len(data.forget),
                   rows, versus)
    write_section(PERFORMANCE_MD, SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
