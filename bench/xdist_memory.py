"""Peak memory of a whole benchmark run's process tree with -n 1 and -n 8, side by side.

    python bench/xdist_memory.py [--model micro] [--repeat 3]

Each run regenerates its completions (the cached model and variants are reused), so the engine
process is part of every run; pytest workers never load a model, so more workers should add
little. Peak = the largest sum of RSS over the pytest process and all its descendants, sampled
every 0.1 s. Writes the "xdist memory" section of docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from host import description

from leakbench.docs_section import write_section
from leakbench.options import parse_cache_dir

ROOT = Path(__file__).resolve().parents[1]

GOAL = 1.3
SELECTION = "email or iban or HumanEval-0 or add-"


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def peak_of_run(workers: int, model: str, cache: Path, report: Path) -> tuple[int, float]:
    shutil.rmtree(cache / "completions", ignore_errors=True)
    command = [sys.executable, "-m", "pytest", "benchmark", f"--model={model}",
               "--algo=none,kl", "-n", str(workers), "-q", "-p", "no:cacheprovider",
               f"--cache-dir={cache}", f"--report-dir={report}", "-k", SELECTION]
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(watched))
        time.sleep(0.1)
    if proc.returncode not in (0, 1):
        sys.exit(f"bench/xdist_memory.py: the -n {workers} run failed ({proc.returncode})")
    return peak, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="micro")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""))
    args = parser.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as report:
        for workers in (1, 8):
            runs = [peak_of_run(workers, args.model, args.cache_dir, Path(report))
                    for _ in range(args.repeat)]
            figures[workers] = (statistics.median(p for p, _ in runs),
                                statistics.median(s for _, s in runs))
    ratio = figures[8][0] / figures[1][0]
    lines = [f"Goal: peak memory of the process tree with `-n 8` at most {GOAL}x that of `-n 1`. "
             f"Measured: {ratio:.2f}x: goal {'met' if ratio <= GOAL else 'missed'}.", "",
             f"- Command: `python bench/xdist_memory.py --model {args.model} --repeat "
             f"{args.repeat}` ({time.strftime('%Y-%m-%d')}, {description()}).",
             f"- Each run: `pytest benchmark --model={args.model} --algo=none,kl -k "
             f"'{SELECTION}'`, completions regenerated (one engine start), models cached; "
             "median of the runs.", "",
             "| workers | peak RSS of the tree (MiB) | wall (s) |", "| ---: | ---: | ---: |"]
    lines += [f"| {w} | {p / 2**20:.0f} | {s:.0f} |" for w, (p, s) in figures.items()]
    write_section(ROOT / "docs" / "PERFORMANCE.md", "xdist memory", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
