"""Secrets in what a whole benchmark run shows: the run's terminal output, its junit XML and its
report files, searched for every value of cases/forget.jsonl (secrets and the owners' other
values, longer than five characters) without --show-secrets.

    python bench/secrets_in_outputs.py [--model tiny] [--algo all] [--cache-dir DIR] [--write]

The run is `pytest benchmark -n 2 --model=M --algo=A` from the repository root, with its junit
XML and reports in a temporary directory. The values are searched as written and through the
escapes of the formats a run writes (leakbench.value_scan). --write replaces the "Secrets in a
whole run" section of docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from leakbench.cases import FORGET_FILE, load_jsonl
from leakbench.docs_section import write_section
from leakbench.value_scan import ValueScan, published_values

ROOT = Path(__file__).resolve().parents[1]
RELIABILITY_MD = ROOT / "docs" / "RELIABILITY.md"
SECTION = "Secrets in a whole run"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--algo", default="all")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--write", action="store_true", help=f"write {RELIABILITY_MD.name}")
    args = parser.parse_args()
    scan = ValueScan(published_values(load_jsonl(ROOT / "cases" / FORGET_FILE)))
    with tempfile.TemporaryDirectory(prefix="leakbench-secrets-") as work:
        work = Path(work)
        run_args = ["benchmark", "-n", "2", f"--model={args.model}", f"--algo={args.algo}",
                    "-p", "no:cacheprovider"]
        if args.cache_dir:
            run_args.append(f"--cache-dir={args.cache_dir}")
        command = [sys.executable, "-m", "pytest", *run_args,
                   f"--junitxml={work / 'junit.xml'}", f"--report-dir={work / 'reports'}"]
        started = time.perf_counter()
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        seconds = time.perf_counter() - started
        output = run.stdout + run.stderr
        rows = [("terminal output", len(output), scan.found(output))]
        for path in [work / "junit.xml", *sorted((work / "reports").rglob("*"))]:
            if path.is_file() and path.suffix != ".png":
                name = "junit XML" if path.name == "junit.xml" else f"reports/{path.name}"
                text = path.read_bytes().decode("utf-8", "replace")
                rows.append((name, len(text), scan.found(text)))
    summary = next((line.strip("= ") for line in reversed(run.stdout.splitlines())
                    if " passed" in line or " failed" in line), "no pytest summary")
    lines = [
        f"Command: `python bench/secrets_in_outputs.py --model {args.model} --algo {args.algo}"
        f" --write` ({time.strftime('%Y-%m-%d')}): `pytest {' '.join(run_args)}` ({summary}, "
        f"exit status {run.returncode}, {seconds / 60:.1f} min), searched for the "
        f"{scan.count:,} values of cases/forget.jsonl longer than five characters.",
        "",
        "| output | characters | values found |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {size:,} | {len(found)} |" for name, size, found in rows),
    ]
    text = "\n".join(lines)
    print(text)
    for name, _, found in rows:
        if found:
            print(f"{name}: {len(found)} values, e.g. a value of {len(found[0])} characters",
                  file=sys.stderr)
    if args.write:
        write_section(RELIABILITY_MD, SECTION, text)
    return 0 if not any(found for _, _, found in rows) and run.returncode in (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
