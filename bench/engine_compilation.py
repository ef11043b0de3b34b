"""vLLM's compiled model against eager execution, for the suite's engine on the CPU.

    python bench/engine_compilation.py --cache-dir DIR [--model tiny] [--weights 3] [--repeat 3]

DIR holds a cached benchmark run on --model (`pytest benchmark --model=tiny --algo=all`). The
weights served are the first --weights directories, in path order, of the largest group of one
architecture there (bench/engine_reload.py's `shared_weights`): in a run with attacks, attacked
variants, which have the planted model's shape. Every run is the suite's own engine job
(`pipeline.engine_job`, run by `serving.run` in an engine process, as a benchmark run generates):
one engine starts on the first of --weights weights directories and loads each next one in place;
on each it answers every request a benchmark run sends one variant (bench/generation.py). Three
ways, each once per repeat, in an order that turns around every repeat:

- compiled: `compilation_config={"mode": 2}`, vLLM's default on the CPU (torch.compile with
  inductor when the engine starts), with empty vLLM and inductor caches (VLLM_CACHE_ROOT,
  TORCHINDUCTOR_CACHE_DIR): a fresh machine;
- compiled, caches kept: the same, on the caches that the repeat's compiled run left, as a later
  engine of one architecture finds them on the same machine (vLLM's own cache is keyed by the
  weights' path, inductor's by the graph);
- eager: `compilation_config={"mode": 0}`, nothing compiled.

The figures are the runs' own stage records (leakbench.progress): "engine start" and each
"engine weights i/n" (its reload and its generation), wall and CPU seconds, and the whole
`serving.run` call. The answers of each way are compared with the compiled run's, request by
request. Writes the "Engine compilation" section of docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from engine_reload import shared_weights
from generation import ROOT, benchmark_requests, load_data
from host import OtherLoad, description

from leakbench import models, pipeline, progress, serving
from leakbench.docs_section import write_section
from leakbench.options import parse_cache_dir
from leakbench.unlearn import Variant

PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
SECTION = "Engine compilation"
WAYS = {
    "compiled": {"compilation_config": {"mode": 2}},
    "compiled, caches kept": {"compilation_config": {"mode": 2}},
    "eager": {"compilation_config": {"mode": 0}},
}


def run_way(way: str, weights: list[Path], requests: list, workdir: Path, caches: Path) -> dict:
    """One engine job on `weights` with `way`'s engine arguments and compile caches under
    `caches`: its wall time, its stage records and its answers."""
    variants = {f"w{i}": Variant(f"w{i}", w, None, str(w)) for i, w in enumerate(weights)}
    job = pipeline.engine_job({w: [f"w{i}"] for i, w in enumerate(weights)},
                              {name: requests for name in variants}, variants, WAYS[way])
    events = workdir / "events.jsonl"
    os.environ.update({progress.EVENTS_ENV: str(events), "VLLM_CACHE_ROOT": str(caches / "vllm"),
                       "TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor")})
    started = time.monotonic()
    answers = serving.run(job, workdir)
    wall = time.monotonic() - started
    records = progress.stage_records(progress.read_events(events)[0])
    stages = {r["stage"].split(":")[0]: r for r in records}
    return {"wall": wall, "stages": stages, "answers": answers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""))
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--weights", type=int, default=3,
                        help="weights directories one engine serves in turn (%(default)s)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    host, load = description(), OtherLoad()
    weights = shared_weights(args.cache_dir)[: args.weights]
    requests = benchmark_requests(load_data(models.lookup(args.model)))
    print(f"{len(weights)} weights directories, {len(requests)} prompts each", flush=True)
    runs: dict[str, list[dict]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeat):
            caches = Path(tmp) / f"caches{repeat}"
            eager_first = repeat % 2 == 1
            order = ["eager", "compiled", "compiled, caches kept"] if eager_first \
                else ["compiled", "compiled, caches kept", "eager"]
            for way in order:
                workdir = Path(tmp) / f"{repeat}-{way.replace(', ', '-').replace(' ', '-')}"
                workdir.mkdir()
                runs[way].append(run_way(way, weights, requests, workdir,
                                         caches if way != "eager" else workdir / "caches"))
                print(f"repeat {repeat + 1}/{args.repeat}, {way}: "
                      f"{runs[way][-1]['wall']:.1f} s", flush=True)
    text = section(args, f"{host}; {load.note()}", weights, requests, runs)
    write_section(PERFORMANCE_MD, SECTION, text)
    print(text)


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}"


def section(args, host: str, weights: list[Path], requests: list, runs: dict) -> str:
    command = shlex.join(["python", "bench/engine_compilation.py", *sys.argv[1:]])
    labels = ["engine start", *(f"engine weights {i + 1}/{len(weights)}"
                                for i in range(len(weights)))]
    rows = []
    for way, way_runs in runs.items():
        cells = []
        for label in labels:
            cells.append(median([r["stages"][label]["wall_s"] for r in way_runs]))
        generation = [sum(r["stages"][label]["wall_s"] for label in labels[1:]) for r in way_runs]
        cpu = [sum(r["stages"][label]["cpu_s"] for label in labels) for r in way_runs]
        walls = [r["wall"] for r in way_runs]
        rows.append(f"| {way} | {' | '.join(cells)} | {median(generation)} | {median(walls)} "
                    f"({', '.join(f'{w:.1f}' for w in walls)}) | {median(cpu)} |")
    reference = runs["compiled"]
    same = []
    for way, way_runs in runs.items():
        if way == "compiled":
            continue
        equal = sum(a == b for run, ref in zip(way_runs, reference)
                    for name in ref["answers"]
                    for a, b in zip(run["answers"][name], ref["answers"][name]))
        total = sum(len(answers) for ref in reference for answers in ref["answers"].values())
        same.append(f"{way} {equal:,}/{total:,}")
    kinds = Counter(w.parent.name for w in weights)  # the stages: planted, retrain, attacked, ...
    stages = ", ".join(f"{kind} x{count}" if count > 1 else kind for kind, count in kinds.items())
    return "\n".join([
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}; {host}; "
        f"`VLLM_CPU_KVCACHE_SPACE={os.environ['VLLM_CPU_KVCACHE_SPACE']}`). One engine on "
        f"{len(weights)} weights directories of `{args.model}` ({stages}), loaded in turn, "
        f"{len(requests):,} requests on each (what a benchmark run sends one variant, greedy). "
        f"Medians of {args.repeat} runs per way, in seconds; CPU: the stages' (the engine's "
        "process tree, its ended compile workers included). The ways alternate which goes "
        "first.",
        "",
        "| way | " + " | ".join(labels) + " | generation, all weights | whole engine job (runs)"
        " | CPU |",
        "| --- |" + " ---: |" * (len(labels) + 3),
        *rows,
        "",
        "Same answers as the compiled run of the same repeat: " + "; ".join(same) + ".",
    ])


if __name__ == "__main__":
    main()
