"""Training threads: does tiny's training gain from running two stages side by side?

    python bench/training_threads.py [--model tiny|micro] [--cache-dir DIR] [--steps 12]
                                     [--repeat 3] [--docs FILE]

Planting and the retrain reference both start from the base model and could train at the same
time. On 2 cores that pays only if one job with two threads uses them worse than two jobs with one
thread each. Side by side in one run: a planting-sized step (batch 16 of retain texts encoded as
planting encodes them, forward in the suite's training precision (leakbench.precision),
backward, AdamW) timed with 2 threads, with 1 thread, and in two
1-thread processes at once. Reported: seconds per step (median of the steps after the first two,
then of --repeat runs) and the steps per second the machine gets in each setting. Needs the base
model (`tiny` by default) in the cache (built by any benchmark run). Writes the "Training threads"
section of docs/PERFORMANCE.md, or of --docs (tests/test_bench_smoke.py: `micro`, 3 steps, a
temporary file).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from host import description
from training_runs import arguments, only_artifact

from leakbench.docs_section import write_section
from leakbench.precision import cpu_precision

ROOT = Path(__file__).resolve().parents[1]

SECTION = "Training threads"


def time_steps(base: str, threads: int, steps: int) -> float:
    """Median seconds of a planting step on `base` with `threads` torch threads, here."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from algorithms.batches import collate, encode_document
    from leakbench import corpus

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    examples = [encode_document(t, tokenizer, 256) for t in corpus.retain_texts(16 * steps)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    seconds = []
    for i in range(steps):
        batch = collate(examples[i * 16 : (i + 1) * 16], tokenizer.pad_token_id)
        started = time.perf_counter()
        with cpu_precision().forward_context():
            loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[2:])


def run_jobs(base: str, threads: int, jobs: int, steps: int) -> list[float]:
    """Seconds per step of `jobs` processes started together, each with `threads` threads."""
    command = [sys.executable, __file__, "--worker", base, str(threads), str(steps)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for _ in range(jobs)]
    return [float(proc.communicate()[0].split()[-1]) for proc in procs]


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        base, threads, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        print(time_steps(base, threads, steps))
        return
    args = arguments(__doc__.splitlines()[0], steps=12)
    base = str(only_artifact(args.cache_dir, f"base-{args.model}"))
    settings = {"one job, 2 threads": (2, 1), "one job, 1 thread": (1, 1),
                "two jobs at once, 1 thread each": (1, 2)}
    results = {name: [] for name in settings}
    for _ in range(args.repeat):
        for name, (threads, jobs) in settings.items():
            results[name].append(run_jobs(base, threads, jobs, args.steps))
    rows = ["| setting | s per step (each job) | steps per second, all jobs |",
            "| --- | ---: | ---: |"]
    for name, (_, jobs) in settings.items():
        per_job = statistics.median(s for run in results[name] for s in run)
        rows.append(f"| {name} | {per_job:.3f} | {jobs / per_job:.2f} |")
    two, parallel = (statistics.median(s for r in results[k] for s in r)
                     for k in ("one job, 2 threads", "two jobs at once, 1 thread each"))
    text = (f"Command: `python bench/training_threads.py --model {args.model} --steps "
            f"{args.steps} --repeat {args.repeat}` ({time.strftime('%Y-%m-%d')}, "
            f"{description()}; base `{args.model}`, batch 16 of retain texts, "
            f"{cpu_precision().autocast or 'float32'} products).\n\n"
            + "\n".join(rows)
            + f"\n\nTwo stages side by side get {2 / parallel / (1 / two):.2f}x the steps per "
              "second of one stage with both threads.\n")
    print(text)
    write_section(args.docs, SECTION, text)


if __name__ == "__main__":
    main()
