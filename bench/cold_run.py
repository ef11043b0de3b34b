"""The README's benchmark command, cold and warm, on this checkout and on another revision, side
by side in one session on one machine.

    python bench/cold_run.py [--baseline REV] [--change REV] [--repeat 3] [--model tiny]
                             [--algo all] [--workers 2] [--docs PATH] [--warm-cache DIR]

Each repeat runs, for the baseline revision and then for the change (alternating, so that a
machine that grows busier or cooler weighs on both alike): the benchmark command with an empty
cache (cold), then the same command again (warm). A revision runs from a `git worktree` of it in
a temporary directory, with its own code first on the import path (the installed libraries are
shared); without --change, the change is this checkout as it is, uncommitted changes included
(then leave the checkout alone while it runs: a run imports its code as it goes).

From each run: the wall time of the command, its exit status, and the stage table of its
results.json (`manifest.stages`; a revision that predates it gives only the wall time). The
section "Cold and warm, side by side" of docs/PERFORMANCE.md gets the medians, the ratios
(change / baseline), the stage table of the change's median cold run, and what
`python -m reports.compare` finds between the two revisions' results.json: the study's tables
should not change in their conclusions.

With --warm-cache DIR, warm runs only, all on DIR, which must already hold what both revisions
build (a change that keeps the artifacts' keys: then one cache serves both); the section "Warm,
side by side" gets the same, from the median warm run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host import OtherLoad, description

from leakbench.docs_section import write_section
from leakbench.plugin.progress import stage_table

ROOT = Path(__file__).resolve().parents[1]
# The environment tox gives the README's commands (tox.ini).
ENV = {"OMP_WAIT_POLICY": "PASSIVE", "VLLM_CPU_KVCACHE_SPACE": "2", "HF_HUB_OFFLINE": "1"}


def benchmark_command(args: argparse.Namespace, cache: Path, reports: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "benchmark", f"--model={args.model}",
            f"--algo={args.algo}", "-n", str(args.workers), "-q", "-p", "no:cacheprovider",
            f"--cache-dir={cache}", f"--report-dir={reports}"]


def run_once(checkout: Path, command: list[str]) -> dict:
    """One benchmark run in `checkout` (its code imported first): wall seconds, exit status,
    results.json's content."""
    env = {**os.environ, **ENV, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    run = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    results = Path(command[-1].split("=", 1)[1]) / "results.json"
    if not results.exists():
        sys.exit(f"bench/cold_run.py: no results.json from {checkout} (exit {run.returncode}):\n"
                 f"{run.stdout[-2000:]}{run.stderr[-2000:]}")
    return {"seconds": seconds, "exit": run.returncode,
            "results": json.loads(results.read_text())}


def measure(checkout: Path, args: argparse.Namespace, scratch: Path, tag: str) -> dict:
    """A cold run on an empty cache, then a warm run on the cache it filled; with --warm-cache,
    one warm run on that cache."""
    cache = args.warm_cache or scratch / f"cache-{tag}"
    runs = {}
    for kind in kinds(args):
        reports = scratch / f"reports-{tag}-{kind}"
        runs[kind] = run_once(checkout, benchmark_command(args, cache, reports))
        print(f"{tag} {kind}: {runs[kind]['seconds']:.0f} s (exit {runs[kind]['exit']})",
              flush=True)
    if not args.warm_cache:
        subprocess.run(["rm", "-rf", str(cache)], check=True)
    return runs


def kinds(args: argparse.Namespace) -> tuple[str, ...]:
    return ("warm",) if args.warm_cache else ("cold", "warm")


def median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]


UNCHANGED = re.compile(r"\s[+-]0(\.0+)?( pp)?$")  # a compare line whose difference is zero


def compare(baseline: dict, change: dict, scratch: Path) -> str:
    """`python -m reports.compare` between the two revisions' results: its lines with a
    difference, and how many metrics are equal."""
    paths = []
    for name, run in (("baseline", baseline), ("change", change)):
        path = scratch / f"{name}.json"
        path.write_text(json.dumps(run["results"]))
        paths.append(str(path))
    compared = subprocess.run([sys.executable, "-m", "reports.compare", *paths], cwd=ROOT,
                              capture_output=True, text=True)
    lines = (compared.stdout.strip() or compared.stderr.strip()).splitlines()
    kept = [line for line in lines if not UNCHANGED.search(line)]
    return "\n".join([*kept, f"({len(lines) - len(kept)} metrics equal in both)"])


def report(args: argparse.Namespace, runs: dict[str, list[dict]], compared: str,
           load: OtherLoad) -> str:
    def seconds(side: str, kind: str) -> list[float]:
        return [run[kind]["seconds"] for run in runs[side]]

    lines = ["| run | baseline (s) | change (s) | change / baseline |",
             "| --- | ---: | ---: | ---: |"]
    first = kinds(args)[0]  # the run whose stages and results are shown
    for kind in kinds(args):
        base, change = (statistics.median(seconds(side, kind)) for side in ("baseline", "change"))
        each = ", ".join(f"{s:.0f}" for s in seconds("change", kind))
        lines.append(f"| {kind} (median of {len(runs['change'])}; change: {each}) "
                     f"| {base:.0f} | {change:.0f} | {change / base:.2f} |")
    median = median_run([run[first] for run in runs["change"]])
    stages = median["results"]["manifest"].get("stages", [])
    command = ("python bench/cold_run.py " + shlex.join(
        [f"--baseline={args.baseline}", *([f"--change={args.change}"] if args.change else []),
         f"--repeat={args.repeat}", f"--model={args.model}",
         f"--algo={args.algo}", f"--workers={args.workers}",
         *([f"--warm-cache={args.warm_cache}"] if args.warm_cache else [])]))
    runs_are = ("on that cache, built before (warm)" if args.warm_cache else
                "with an empty cache (cold), then again (warm)")
    return "\n".join([
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}; {description()}; {load.note()}; "
        "the benchmark's engine processes count as other processes there). Each run: "
        f"`pytest benchmark --model={args.model} --algo={args.algo} -n {args.workers}` "
        f"{runs_are}; baseline and change alternate.", "", *lines, "",
        f"The change's median {first} run, stage by stage (docs/REPORTS.md, \"Stages\"):", "",
        "```", *stage_table(stages), "```", "",
        f"What `python -m reports.compare` finds between the two revisions' {first} results:", "",
        "```", compared, "```"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD~1", help="git revision to compare against")
    parser.add_argument("--change", help="git revision to measure (default: this checkout)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--algo", default="all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    parser.add_argument("--warm-cache", type=Path,
                        help="warm runs only, on this cache, which must hold what both revisions "
                        "build (e.g. after a run of each); writes the section \"Warm, side by "
                        "side\"")
    args = parser.parse_args()
    load = OtherLoad()
    with tempfile.TemporaryDirectory(prefix="leakbench-cold-") as directory:
        scratch = Path(directory)
        checkouts = {"baseline": scratch / "baseline",
                     "change": scratch / "change" if args.change else ROOT}
        revisions = {"baseline": args.baseline, "change": args.change}
        try:
            for side, revision in revisions.items():
                if revision:
                    subprocess.run(["git", "worktree", "add", "--detach", str(checkouts[side]),
                                    revision], cwd=ROOT, check=True, capture_output=True)
            runs: dict[str, list[dict]] = {"baseline": [], "change": []}
            for repeat in range(args.repeat):
                for side in runs:
                    runs[side].append(measure(checkouts[side], args, scratch, f"{side}-{repeat}"))
            first = kinds(args)[0]
            compared = compare(median_run([r[first] for r in runs["baseline"]]),
                               median_run([r[first] for r in runs["change"]]), scratch)
        finally:
            for side, revision in revisions.items():
                if revision:
                    subprocess.run(["git", "worktree", "remove", "--force", str(checkouts[side])],
                                   cwd=ROOT, capture_output=True)
    section = "Warm, side by side" if args.warm_cache else "Cold and warm, side by side"
    write_section(args.docs, section, report(args, runs, compared, load))
    print(f"wrote {args.docs}")


if __name__ == "__main__":
    main()
