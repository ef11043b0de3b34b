"""The study on the embedded model: every algorithm, greedy and sampled, into docs/RESULTS.md.

    python bench/study.py [--model tiny] [--workers 2]

Runs the benchmark twice through its normal command line - greedy over every test, then
10 samples at temperature 0.8 over the leak tests - and copies each run's results.md, with the
exact command that produced it, into its own section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from leakbench.docs_section import write_section

ROOT = Path(__file__).resolve().parents[1]

RUNS = {
    "greedy": [],
    "sampled (10 samples, temperature 0.8, leak tests)": [
        "--samples=10", "--temperature=0.8", "-m", "direct_leak or indirect_leak or holdout"],
}


def as_subsections(results_md: str) -> str:
    """A run's results.md as the body of one section of RESULTS.md: without its title and run
    lines (the section states the command), its `##` headings one level down, so that the next
    write_section replaces the whole section and not just its text up to the first table."""
    body = results_md[results_md.index("\n## ") + 1:]
    return re.sub(r"^## ", "### ", body, flags=re.M)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--workers", default="2")
    args = parser.parse_args()
    for name, extra in RUNS.items():
        with tempfile.TemporaryDirectory() as out:
            command = ["pytest", "benchmark", f"--model={args.model}", "--algo=all",
                       "-n", args.workers, "-q", "-rN", *extra]
            started = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", *command, f"--report-dir={out}"],
                                 cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            results = Path(out) / "results.md"
            if not results.exists():
                sys.exit(f"bench/study.py: the {name} run wrote no report (exit {run.returncode}):"
                         f"\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
            body = (f"Command: `{shlex.join(command)}` ({time.strftime('%Y-%m-%d')}, "
                    f"{seconds:.0f} s wall on this machine, caches warm where a previous run "
                    f"left them).\n\n{as_subsections(results.read_text())}")
            write_section(ROOT / "docs" / "RESULTS.md", f"Study on `{args.model}`: {name}", body)
            print(f"{name}: {seconds:.0f} s, exit {run.returncode}")


if __name__ == "__main__":
    main()
