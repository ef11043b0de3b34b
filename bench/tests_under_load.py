"""The harness's own tests under load: CI's entry point (.ci/run, the README's test command) on
fresh clones of this checkout's HEAD, several times in a row, while CPU hogs keep every core busy.

    python bench/tests_under_load.py [--runs 3] [--hogs 2] [--write]

Each run clones HEAD into a new temporary directory and runs ``bash .ci/run`` there as CI does
(``CI=true``, no standard input, none of this shell's LEAKBENCH_/VLLM_/HF_ variables), so it
builds its own tox environment and its own cache. The hogs are ``python -c 'while True: pass'``
at normal priority, started before the first run and ended after the last. --write replaces the
"Tests under load" section of docs/RELIABILITY.md. Takes tens of minutes: each run is the whole
suite on cores it shares with the hogs.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host import description

from leakbench.docs_section import write_section

ROOT = Path(__file__).resolve().parents[1]
RELIABILITY_MD = ROOT / "docs" / "RELIABILITY.md"
SECTION = "Tests under load"
_SUMMARY = re.compile(r"=+ (.*\d+ (?:passed|failed).*) in ([\d.]+)s")
_OWN_VARIABLES = ("LEAKBENCH_", "VLLM_", "HF_")


def ci_environment() -> dict[str, str]:
    """This process's environment as CI would have it: none of the project's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_VARIABLES)}
    env["CI"] = "true"
    return env


def one_run(index: int, commit: str, logs: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="leakbench-under-load-") as clone:
        subprocess.run(["git", "clone", "-q", str(ROOT), clone], check=True)
        subprocess.run(["git", "-C", clone, "checkout", "-q", commit], check=True)
        log = logs / f"run-{index}.log"
        started = time.perf_counter()
        with open(log, "w") as out:
            returncode = subprocess.run(["bash", ".ci/run"], cwd=clone, env=ci_environment(),
                                        stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - started
    summaries = _SUMMARY.findall(log.read_text(errors="replace"))
    summary, pytest_s = summaries[-1] if summaries else ("no pytest summary", "")
    return {"run": index, "returncode": returncode, "summary": summary,
            "pytest_s": float(pytest_s) if pytest_s else None, "seconds": seconds, "log": log}


def report(runs: list[dict], commit: str, hogs: int, load: tuple[float, ...]) -> str:
    lines = [
        f"Command: `python bench/tests_under_load.py --runs {len(runs)} --hogs {hogs} --write` "
        f"({time.strftime('%Y-%m-%d')}; commit `{commit[:10]}`; {description()}; {hogs} hogs "
        "`python -c 'while True: pass'` at normal priority for the whole time; load average "
        f"at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}).",
        "",
        "Each run: a fresh clone of the commit, `bash .ci/run` (the README's test command: a new "
        "tox environment and an empty cache), as CI runs it.",
        "",
        "| run | exit status | pytest | pytest time | whole run |",
        "| ---: | ---: | --- | ---: | ---: |",
    ]
    for run in runs:
        pytest_time = f"{run['pytest_s'] / 60:.1f} min" if run["pytest_s"] else "—"
        lines.append(f"| {run['run']} | {run['returncode']} | {run['summary']} | {pytest_time} "
                     f"| {run['seconds'] / 60:.1f} min |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--write", action="store_true", help=f"write {RELIABILITY_MD.name}")
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    logs = Path(tempfile.mkdtemp(prefix="leakbench-under-load-logs-"))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.hogs)]
    runs = []
    try:
        for index in range(1, args.runs + 1):
            runs.append(one_run(index, commit, logs))
            print(f"run {index}: exit {runs[-1]['returncode']}, {runs[-1]['summary']}, "
                  f"{runs[-1]['seconds']:.0f} s (log {runs[-1]['log']})", flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    text = report(runs, commit, args.hogs, os.getloadavg())
    print(text)
    if args.write:
        write_section(RELIABILITY_MD, SECTION, text)
    return 0 if all(run["returncode"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
