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
(change / baseline), the stage table of the change's median cold run, whether the study's
conclusions hold in each revision's results (a faster run must keep them), and how many metrics
`python -m reports.compare` finds changed, with the changes of the main table's metrics.

With --warm-cache DIR, warm runs only, all on DIR, which must already hold what both revisions
build (a change that keeps the artifacts' keys: then one cache serves both); the section "Warm,
side by side" gets the same, from the median warm run.
"""

from __future__ import annotations

import argparse
import configparser
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
from tabulate import tabulate

from leakbench.docs_section import write_section
from leakbench.plugin.progress import stage_table
from reports.compare import comparison
from reports.compare import load as load_results
from reports.formatting import MISSING, value_text
from reports.render import MAIN

ROOT = Path(__file__).resolve().parents[1]


def tox_environment(tox_ini: Path) -> dict[str, str]:
    """The variables tox sets for every environment (its `[testenv]` set_env), each at the
    default of its `{env:NAME:DEFAULT}`: the README's commands run with these."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(tox_ini)
    env = {}
    for line in config["testenv"]["set_env"].strip().splitlines():
        name, value = (part.strip() for part in line.split("=", 1))
        default = re.fullmatch(r"\{env:[^:}]+:([^}]*)\}", value)
        env[name] = default.group(1) if default else value
    return env


ENV = tox_environment(ROOT / "tox.ini")


def benchmark_command(args: argparse.Namespace, cache: Path, reports: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "benchmark", f"--model={args.model}",
            f"--algo={args.algo}", "-n", str(args.workers), "-q", "-p", "no:cacheprovider",
            f"--cache-dir={cache}", f"--report-dir={reports}"]


def run_once(checkout: Path, command: list[str]) -> dict:
    """One benchmark run in `checkout` (its code imported first): wall seconds, exit status,
    results.json's path and content."""
    env = {**os.environ, **ENV, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    run = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    results = Path(command[-1].split("=", 1)[1]) / "results.json"
    if not results.exists():
        sys.exit(f"bench/cold_run.py: no results.json from {checkout} (exit {run.returncode}):\n"
                 f"{run.stdout[-2000:]}{run.stderr[-2000:]}")
    return {"seconds": seconds, "exit": run.returncode, "path": results,
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


# The study's conclusions as docs/RESULTS.md reads them ("Study on `tiny`: greedy"), on the direct
# probes: the planted model leaks at least 90% of them; GA+GD and GA+KL leak at least 50% fewer
# and keep at least 91% of the planted model's utility.
PLANTED_LEAK, FEWER, KEPT = 0.90, 0.50, 0.91
HEADLINE = ("gd", "kl")
LEAK, RETENTION = "direct_leak_direct_probes", "utility_retention"


def by_algorithm(results: dict) -> dict[str, dict]:
    """A results.json's metrics per algorithm."""
    return {row["algorithm"]: row["metrics"] for row in results["rows"]}


def conclusions_hold(results: dict) -> bool:
    """Whether one run's results.json meets the study's conclusions."""
    rows = by_algorithm(results)
    planted = rows.get("none", {}).get(LEAK)
    if planted is None or planted < PLANTED_LEAK:
        return False
    return all(rows.get(name, {}).get(LEAK, 1.0) <= (1 - FEWER) * planted
               and rows.get(name, {}).get(RETENTION, 0.0) >= KEPT for name in HEADLINE)


def conclusions(baseline: dict, change: dict) -> list[str]:
    """The study's headline metrics of both revisions, row by row, and whether each holds."""
    before, after = by_algorithm(baseline), by_algorithm(change)
    lines = ["| algorithm | direct leak, direct probes: baseline | change "
             "| utility retention: baseline | change |", "| --- | ---: | ---: | ---: | ---: |"]
    for name in dict.fromkeys([*before, *after]):
        values = [(metric, side.get(name, {}).get(metric)) for metric in (LEAK, RETENTION)
                  for side in (before, after)]
        cells = [MISSING if value is None else value_text(metric, value)
                 for metric, value in values]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    verdict = {side: "yes" if conclusions_hold(results) else "**no**"
               for side, results in (("baseline", baseline), ("change", change))}
    return [*lines, "", f"The study's conclusions (planted >= {PLANTED_LEAK:.0%} direct leaks; "
            f"{' and '.join(HEADLINE)} >= {FEWER:.0%} fewer, keeping >= {KEPT:.0%}) hold: "
            f"baseline {verdict['baseline']}, change {verdict['change']}."]


def compare(baseline: Path, change: Path) -> list[str]:
    """How many metrics `python -m reports.compare` finds changed between the two revisions'
    results.json, and the changed ones of the main table (reports.render.MAIN) in its format."""
    lines = comparison(load_results(baseline)[1], load_results(change)[1])
    changed = [line for line in lines if line[3] != line[4]]
    shown = [line for line in changed if line[2] in MAIN]
    return [f"{len(changed)} of {len(lines)} metrics differ; those of the main table:", "",
            "```", tabulate(shown, disable_numparse=True,
                            headers=["model", "algorithm", "metric", "baseline", "change",
                                     "change - baseline"]) if shown else "(none)", "```"]


def report(args: argparse.Namespace, runs: dict[str, list[dict]], compared: list[str],
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
        f"The two revisions' median {first} results (results.json, `python -m reports.compare`):",
        "", *compared])


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
            baseline, change = (median_run([r[first] for r in runs[side]])
                                for side in ("baseline", "change"))
            compared = [*conclusions(baseline["results"], change["results"]), "",
                        *compare(baseline["path"], change["path"])]
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
