"""How the suite's costs grow: leak-probe count x1, x2, x4 and forget-set size x1, x2, x4.

    python bench/scaling.py [--model micro] [--repeat 3] [--probes 0] [--forget 0]
                            [--algorithm kl] [--threads 0] [--cache-dir DIR]

Probe count: generation through the suite's path (`leakbench.pipeline.generate` into an empty
store, one engine process per call, timed as in bench/generation.py: total from the call until
the answers are back, and the `LLM.generate` call alone) on the planted model, for N, 2N and 4N
leak probes, greedy, the suite's sampling. The probes are real, distinct ones: every probe of the
whole forget and holdout sets (not only the planted part), the 4N set being the first 4N of
them, 2N every second and N every fourth of those, so the mix of kinds stays the same. N is
--probes, by default a quarter of all probes; when 4N exceeds them, copies with a first line of
their own (`# copy K`, as bench/load.py does) make up the rest.

Forget-set size: the planted forget set (what a benchmark run on --model unlearns) is the 4F
set, every second sample the 2F set, every fourth the F set (--forget F takes the first 4F
instead). For each: unlearning with --algorithm through the suite's own step
(`leakbench.unlearn._unlearn_into`) with the family's hyper-parameters, max_steps and the early
stop off, so that the epochs decide (timed: the loop's own seconds), with as many retain texts
as forget samples, as the pipeline does; then the generation of that forget set's leak probes on
the unlearned variant (its LoRA adapter or its weights) through the suite's path.

Growth is called linear when the time per unit (probe, forget sample) at x4 is within 25% of
that at x1. A fixed cost (the engine start) makes the total grow slower than linearly; the
generation-only and the per-unit columns show the marginal cost. Median of --repeat runs.
Writes the "Scaling" section of docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from generation import ROOT, load_data, planted_variant, suite_generate, unique
from host import OtherLoad, description
from unlearning_speed import capped, unlearn_once

from algorithms.hparams import load_hparams
from leakbench import corpus, models
from leakbench.docs_section import write_section
from leakbench.options import parse_cache_dir
from leakbench.probes import PrivacyData
from leakbench.schema import Decoding, Request
from leakbench.unlearn import Variant

PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
SECTION = "Scaling"
FACTORS = (1, 2, 4)
LINEAR = 0.25  # time per unit at x4 within 25% of x1


def all_leak_probes() -> list[Request]:
    """The requests of every leak probe of the whole forget and holdout sets, distinct."""
    data = PrivacyData.load(ROOT / "cases")
    return unique([p.request(Decoding()) for split in ("forget", "holdout")
                   for p in data.leak_probes(split)])


def probe_pool(count: int) -> list[Request]:
    """`count` distinct leak-probe requests: all of `all_leak_probes`, then copies of them with a
    first line `# copy K` as long as more are needed."""
    base = all_leak_probes()
    pool, copy = list(base), 1
    while len(pool) < count:
        pool += [dataclasses.replace(r, prompt=f"# copy {copy}\n{r.prompt}") for r in base]
        copy += 1
    return pool[:count]


def nested(items: list, factor: int) -> list:
    """The x`factor` subset of the x4 list `items`: every (4 / factor)-th item."""
    return items[:: max(FACTORS) // factor]


def growth(x1: float, x4: float) -> str:
    ratio = x4 / x1
    if ratio < 1 - LINEAR:
        shape = "sublinear"
    elif ratio > 1 + LINEAR:
        shape = "superlinear"
    else:
        shape = "linear"
    return f"{ratio:.2f} ({shape})"


def probe_scaling(variant: Variant, base: int, repeat: int) -> dict[int, dict]:
    pool = probe_pool(base * max(FACTORS))
    runs: dict[int, list] = {f: [] for f in FACTORS}
    for i in range(repeat):
        for factor in (FACTORS if i % 2 == 0 else FACTORS[::-1]):
            runs[factor].append(suite_generate(variant, nested(pool, factor)))
            print(f"probes x{factor}: {runs[factor][-1].total:.1f} s", flush=True)
    return {f: {"units": len(nested(pool, f)),
                "total": statistics.median(t.total for t in timings),
                "generate": statistics.median(t.generate for t in timings),
                "tokens": statistics.median(t.tokens for t in timings)}
            for f, timings in runs.items()}


def forget_scaling(spec: models.ModelSpec, data: PrivacyData, planted: Variant, forget: int,
                   algorithm: str, repeat: int) -> tuple[dict[int, dict], object]:
    family = models.family(spec)
    hp = capped(load_hparams(family, algorithm), None)
    largest = data.forget[: forget * max(FACTORS)] if forget else data.forget
    runs: dict[int, list] = {f: [] for f in FACTORS}
    for i in range(repeat):
        for factor in (FACTORS if i % 2 == 0 else FACTORS[::-1]):
            samples = nested(largest, factor)
            with tempfile.TemporaryDirectory(prefix="leakbench-scaling-") as tmp:
                out = Path(tmp)
                log = unlearn_once(planted.weights, algorithm, hp, samples,
                                   corpus.retain_texts(len(samples)), out)
                lora = hp.mode == "lora"
                variant = Variant(algorithm, planted.weights if lora else out,
                                  out if lora else None, f"scaling-{factor}")
                probes = unique([p.request(Decoding())
                                 for p in PrivacyData(samples, []).leak_probes("forget")])
                timing = suite_generate(variant, probes)
            runs[factor].append((len(samples), len(probes), log["steps"], log["seconds"],
                                 timing))
            print(f"forget x{factor}: {len(samples)} samples, {log['steps']} steps, "
                  f"{log['seconds']:.1f} s unlearning, {timing.total:.1f} s generation",
                  flush=True)
    return {f: {"units": rs[0][0], "probes": rs[0][1], "steps": rs[0][2],
                "unlearn": statistics.median(r[3] for r in rs),
                "total": statistics.median(r[4].total for r in rs),
                "generate": statistics.median(r[4].generate for r in rs)}
            for f, rs in runs.items()}, hp


def section(args, host: str, probes: dict[int, dict], forget: dict[int, dict], hp,
            threads: int) -> str:
    first, last = min(FACTORS), max(FACTORS)

    def per(figures: dict[int, dict], key: str, unit: str = "units") -> str:
        return growth(figures[first][key] / figures[first][unit],
                      figures[last][key] / figures[last][unit])

    probe_rows = [
        f"| x{f} | {p['units']:,} | {p['tokens']:,.0f} | {p['total']:.1f} | {p['generate']:.1f} "
        f"| {1000 * p['total'] / p['units']:.1f} | {1000 * p['generate'] / p['units']:.2f} |"
        for f, p in probes.items()]
    forget_rows = [
        f"| x{f} | {g['units']:,} | {g['steps']} | {g['unlearn']:.3g} "
        f"| {g['unlearn'] / g['units']:.3g} | {g['probes']:,} | {g['total']:.1f} "
        f"| {g['generate']:.1f} | {1000 * g['generate'] / g['probes']:.2f} |"
        for f, g in forget.items()]
    verdict = (
        f"Growth, time per unit at x{last} / at x{first} (linear: within {LINEAR:.0%} of 1): "
        f"leak probes: generation {per(probes, 'generate')} for the `LLM.generate` call, "
        f"{per(probes, 'total')} with the engine start; forget set: unlearning "
        f"{per(forget, 'unlearn')} per forget sample, generation of its probes "
        f"{per(forget, 'generate', 'probes')} per probe (`LLM.generate`), "
        f"{per(forget, 'total', 'probes')} with the engine start.")
    return "\n".join([
        verdict,
        "",
        f"- Machine: {host}; `VLLM_CPU_KVCACHE_SPACE={os.environ['VLLM_CPU_KVCACHE_SPACE']}`.",
        f"- Command: `{shlex.join(['python', 'bench/scaling.py', *sys.argv[1:]])}` "
        f"({time.strftime('%Y-%m-%d')}); model `{args.model}`; median of {args.repeat} "
        "repeat(s), the sizes run in alternating order.",
        "- Leak probes: generation on the planted model through `pipeline.generate` into an "
        "empty store (one engine start per call); distinct real probes of the whole forget and "
        "holdout sets, x1 and x2 every fourth and every second of the x4 set.",
        f"- Forget set: `{args.algorithm}` ({hp.mode}, {hp.epochs} epochs, batch "
        f"{hp.batch_size}, max_steps and early stop off, {threads} torch thread(s)) through the "
        "suite's unlearning step, the loop's own seconds; then that set's leak probes generated "
        "on the unlearned variant through `pipeline.generate`.",
        "",
        "| leak probes | prompts | tokens | total (s) | generate (s) | total ms/probe "
        "| generate ms/probe |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *probe_rows,
        "",
        "| forget set | samples | steps | unlearning (s) | s/sample | its probes "
        "| generation total (s) | generate (s) | generate ms/probe |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *forget_rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="micro")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--probes", type=int, default=0,
                        help="leak probes at x1 (0: a quarter of all forget + holdout probes)")
    parser.add_argument("--forget", type=int, default=0,
                        help="forget samples at x1 (0: a quarter of the planted forget set)")
    parser.add_argument("--algorithm", default="kl")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for unlearning (0: torch's default, as the suite)")
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""))
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    host, load = description(), OtherLoad()
    spec = models.lookup(args.model)
    data = load_data(spec)
    planted = planted_variant(spec, data, args.cache_dir)
    base = args.probes or len(all_leak_probes()) // max(FACTORS)
    probes = probe_scaling(planted, base, args.repeat)
    forget, hp = forget_scaling(spec, data, planted, args.forget, args.algorithm, args.repeat)
    text = section(args, f"{host}; {load.note()}", probes, forget, hp, torch.get_num_threads())
    write_section(PERFORMANCE_MD, SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
