"""End to end: the benchmark on the `micro` model under pytest-xdist, through a real vLLM engine,
cold in a pseudo-terminal as a person runs it, then warm into a log."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

import attacks
from leakbench.options import DEFAULT_ATTACKS

pytestmark = [pytest.mark.engine, pytest.mark.training]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ATTACKS_RUN = attacks.select(DEFAULT_ATTACKS)
PREPARED = ["build micro", "plant", "unlearn kl",
            *(f"attack {algorithm}@{attack}" for algorithm in ("none", "kl")
              for attack in DEFAULT_ATTACKS_RUN), "generate"]
LONGEST_SILENCE_S = 5  # what a person waits at most for the next sign of progress


def stages(report_dir):
    manifest = json.loads((report_dir / "results.json").read_text())["manifest"]
    return {record["stage"]: record for record in manifest["stages"]}


def run_in_terminal(command, env, timeout):
    """Run `command` with a pseudo-terminal for its output; its exit status and its output as
    (seconds since the start, text) chunks in the order they came."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=secondary, stderr=secondary)
    os.close(secondary)
    chunks, started = [], time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            if select.select([primary], [], [], 1.0)[0]:
                try:
                    data = os.read(primary, 1 << 16)
                except OSError:  # the output closed: the run ended
                    break
                if not data:
                    break
                chunks.append((time.monotonic() - started, data.decode(errors="replace")))
        return process.wait(timeout=60), chunks
    finally:
        process.kill()
        os.close(primary)


def test_small_benchmark_under_xdist_starts_exactly_one_engine(tmp_path):
    """...and, on a cold cache in a terminal, shows some progress at least every
    LONGEST_SILENCE_S seconds from the end of collection to the first test result: each stage's
    live line, then its line when it ends, before the tests' progress. The stage table of
    results.json says built on a cold cache, cached on a warm one, whose log says so too."""
    cache, reports = tmp_path / "cache", tmp_path / "reports"
    command = [sys.executable, "-m", "pytest", "benchmark", "--model=micro", "--algo=none,kl",
               "-n", "2", "-p", "no:cacheprovider", f"--cache-dir={cache}",
               f"--report-dir={reports}", "--color=no",
               "-k", "email-dict or iban-env or HumanEval-00 or add-2",
               "-m", "not memorization"]  # the per-secret tests' ids match -k too
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "COLUMNS": "160"}
    status, chunks = run_in_terminal(command, env, timeout=900)
    output = "".join(text for _, text in chunks)
    assert status in (0, 1), output[-3000:]  # 1: some probes leak or programs fail
    assert " passed" in output or " failed" in output
    engine_jobs = list((cache / "engine").glob("*/job.json"))
    assert len(engine_jobs) == 1, output[-3000:]  # none and kl (a LoRA adapter) share one engine
    started = engine_jobs[0].stat().st_mtime_ns
    leftover = subprocess.run(["pgrep", "-f", f"leakbench.serving {cache}"], capture_output=True)
    assert leftover.stdout == b""

    collected = next(t for t, text in chunks if re.search(r"workers \[\d+ items?\]", text))
    first_test = next(t for t, text in chunks if t > collected and re.search(r"^[.F]", text, re.M))
    shown = [t for t, text in chunks if collected <= t <= first_test and "LeakBench " in text]
    gaps = [b - a for a, b in zip([collected, *shown], [*shown, first_test])]
    assert max(gaps) <= LONGEST_SILENCE_S, gaps
    # The screen as it stays: a terminal ends lines with \r\n; a bare \r rewrites the line.
    screen = [line.rsplit("\r", 1)[-1].rstrip()
              for line in output.replace("\r\n", "\n").split("\n")]
    first_progress = next(i for i, line in enumerate(screen) if re.search(r"\[\s*\d+%\]", line))
    before_tests = screen[:first_progress]
    built = [line.split(":")[0].removeprefix("LeakBench ") for line in before_tests
             if ": built in" in line and not line.startswith("LeakBench engine")]
    assert sorted(built) == sorted([*PREPARED, "prepare"]) and built[:3] == PREPARED[:3], built
    assert built[-2:] == ["generate", "prepare"]

    cold = stages(reports)
    assert {name: cold[name]["status"] for name in PREPARED} == dict.fromkeys(PREPARED, "built")
    assert all(cold[name].get("part_of") == "prepare" for name in PREPARED)
    assert cold["plant"]["steps"] > 0 and cold["plant"]["work"]["tokens"] > 0
    engine_parts = [name for name, record in cold.items() if record.get("part_of") == "generate"]
    # the start, the planted weights (kl is an adapter on them) and each attacked variant's
    assert engine_parts[0] == "engine start"
    assert len(engine_parts) == 2 + 2 * len(DEFAULT_ATTACKS_RUN)
    assert cold["generate"]["cpu_s"] >= sum(cold[name]["cpu_s"] for name in engine_parts)
    assert cold["tests"]["work"]["tests"] > 0

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == status
    assert engine_jobs[0].stat().st_mtime_ns == started  # no engine: every completion was cached
    warm = stages(reports)
    assert {name: warm[name]["status"] for name in [*PREPARED, "prepare"]} == dict.fromkeys(
        [*PREPARED, "prepare"], "cached")
    assert "engine start" not in warm
    assert "LeakBench generate: cached" in again.stdout.splitlines()
