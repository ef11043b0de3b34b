"""Load: the benchmark on `micro` with FACTOR times the default number of leak probes, and the
peak memory of its whole process tree (pytest controller, xdist workers, the vLLM engine and its
core, sandboxed programs), sampled with psutil.

    python bench/load.py [--factor 10] [--algo none,kl] [--workers 2] [--cache-dir DIR] [--write]

How the probes grow without retraining anything: the forget set (what is planted and unlearned)
stays as it is, so every model artifact comes from the cache; the holdout set is repeated until
the forget and holdout probes together are FACTOR times the default count. Each copy of a holdout
record gets a new id and a first line of its own (``# copy N``) in its text and prompts, so every
copy is a distinct prompt: the engine generates, the judges judge and the reports count FACTOR
times as much, and the holdout index the judges search is as large as the repeated set.

--write replaces the "## Load" section of docs/RELIABILITY.md with the figures. Takes minutes:
on 2 cores, mostly generation (one engine) and the tests themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from host import description

from leakbench.cases import FORGET_FILE, HOLDOUT_FILE, dumps_jsonl, load_jsonl
from leakbench.docs_section import write_section

ROOT = Path(__file__).resolve().parents[1]

RELIABILITY_MD = ROOT / "docs" / "RELIABILITY.md"
SECTION = "Load"


def copy_record(record: dict, copy: int) -> dict:
    """A holdout record as a distinct sample: new id, a first line of its own, spans shifted."""
    prefix = f"# copy {copy}\n"
    out = dict(record, id=f"{record['id']}-copy{copy}", text=prefix + record["text"],
               span=[record["span"][0] + len(prefix), record["span"][1] + len(prefix)])
    out["probes"] = [dict(p, prompt=prefix + p["prompt"]) for p in record.get("probes", [])
                     if p["style"] != "direct"]  # the direct probe is derived again
    return out


def scaled_cases(directory: Path, factor: int) -> dict:
    """forget.jsonl as it is, holdout.jsonl repeated: FACTOR times the default probes in all."""
    forget = load_jsonl(ROOT / "cases" / FORGET_FILE)
    holdout = load_jsonl(ROOT / "cases" / HOLDOUT_FILE)
    probes = sum(len(s.probes) for s in forget + holdout)
    holdout_probes = sum(len(s.probes) for s in holdout)
    copies = max(1, round((factor * probes - (probes - holdout_probes)) / holdout_probes))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FORGET_FILE).write_text((ROOT / "cases" / FORGET_FILE).read_text())
    records = [json.loads(line) for line in dumps_jsonl(holdout).splitlines()]
    lines = [json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records]
    lines += [json.dumps(copy_record(r, c), sort_keys=True, ensure_ascii=False)
              for c in range(1, copies) for r in records]
    (directory / HOLDOUT_FILE).write_text("\n".join(lines) + "\n")
    scaled = load_jsonl(directory / HOLDOUT_FILE)  # validates every copy
    total = sum(len(s.probes) for s in forget + scaled)
    return {"default_probes": probes, "probes": total, "holdout_copies": copies,
            "factor": round(total / probes, 2)}


class TreeMemory:
    """Samples the resident memory of a process and all its descendants."""

    def __init__(self, pid: int, every_s: float = 0.5):
        self.root = psutil.Process(pid)
        self.every_s = every_s
        self.peak_total = 0
        self.peak_by_role: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def role(process: psutil.Process) -> str:
        try:
            cmdline = " ".join(process.cmdline())
        except psutil.Error:
            return "other"
        if "leakbench.serving" in cmdline:
            return "engine (leakbench.serving)"
        if "VLLM::" in cmdline or "multiprocessing" in cmdline:
            return "engine core, workers, helpers (vLLM)"
        if "main.py" in cmdline:
            return "sandboxed programs"
        if "pytest-xdist" in cmdline or "sys.stdin.readline" in cmdline:
            return "xdist workers"
        if "pytest" in cmdline:
            return "pytest controller"
        return "other"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total, by_role = 0, {}
            for process in tree:
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                role = self.role(process)
                by_role[role] = by_role.get(role, 0) + rss
            self.peak_total = max(self.peak_total, total)
            for role, rss in by_role.items():
                self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), rss)
            self.samples += 1
            self._stop.wait(self.every_s)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run(args: argparse.Namespace, work: Path) -> dict:
    cases = scaled_cases(work / "cases", args.factor)
    cache = Path(args.cache_dir or os.environ.get("LEAKBENCH_CACHE_DIR")
                 or Path.home() / ".cache" / "leakbench")
    command = [sys.executable, "-m", "pytest", "benchmark", f"--model={args.model}",
               f"--algo={args.algo}", f"--cases-dir={work / 'cases'}", f"--cache-dir={cache}",
               f"--report-dir={work / 'reports'}", "-p", "no:cacheprovider", "-q", "-rN",
               "--tb=no", "-n", str(args.workers)]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    started = time.monotonic()
    with open(work / "output.txt", "wb") as output:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output,
                                stderr=subprocess.STDOUT)
        with TreeMemory(proc.pid) as memory:
            returncode = proc.wait()
    seconds = time.monotonic() - started
    tail = (work / "output.txt").read_text(errors="replace").splitlines()[-3:]
    results = work / "reports" / "results.json"
    outcomes = len(json.loads(results.read_text())["outcomes"]) if results.exists() else 0
    return {**cases, "command": " ".join(command[2:]), "returncode": returncode,
            "seconds": round(seconds, 1), "tests_recorded": outcomes,
            "peak_tree_rss_mib": round(memory.peak_total / 2**20),
            "peak_rss_mib_by_role": {k: round(v / 2**20)
                                     for k, v in sorted(memory.peak_by_role.items())},
            "samples": memory.samples, "last_lines": tail}


def markdown(result: dict) -> str:
    roles = "\n".join(f"| {role} | {mib} |" for role, mib in result["peak_rss_mib_by_role"].items())
    return f"""Command: `python bench/load.py --factor {result['factor_asked']}` \
({result['date']}; {result['machine']}).

- Probes: {result['probes']:,} leak probes against {result['default_probes']:,} by default \
({result['factor']}x; the holdout set repeated {result['holdout_copies']} times, each copy a \
distinct prompt), {result['tests_recorded']:,} benchmark tests recorded.
- Run: `{result['command']}`, exit status {result['returncode']}, {result['seconds']} s.
- Peak resident memory of the whole process tree (sampled every 0.5 s, {result['samples']} \
samples): **{result['peak_tree_rss_mib']:,} MiB**.

| process (peak of each role, summed over its processes) | peak RSS (MiB) |
| --- | ---: |
{roles}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--model", default="micro")
    parser.add_argument("--algo", default="none,kl")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--write", action="store_true",
                        help=f"write the figures to the '{SECTION}' section of {RELIABILITY_MD}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leakbench-load-") as work:
        result = run(args, Path(work))
    result.update(factor_asked=args.factor, date=time.strftime("%Y-%m-%d"),
                  machine=f"{description()}, load average {os.getloadavg()[0]:.1f} at the end")
    print(json.dumps(result, indent=2))
    if args.write:
        write_section(RELIABILITY_MD, SECTION, markdown(result))


if __name__ == "__main__":
    main()
