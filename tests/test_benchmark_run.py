"""End to end: the benchmark on the `micro` model under pytest-xdist, through a real vLLM engine."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.training]

ROOT = Path(__file__).resolve().parents[1]


def test_small_benchmark_under_xdist_starts_exactly_one_engine(tmp_path):
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "pytest", "benchmark", "--model=micro", "--algo=none,kl",
               "-n", "2", "-p", "no:cacheprovider", f"--cache-dir={cache}",
               "-k", "email-dict or iban-env or HumanEval-00 or add-2", "-q"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode in (0, 1), output[-3000:]  # 1: some probes leak or programs fail
    assert " passed" in output or " failed" in output
    engine_jobs = list((cache / "engine").glob("*/job.json"))
    assert len(engine_jobs) == 1, output[-3000:]  # none and kl (a LoRA adapter) share one engine
    started = engine_jobs[0].stat().st_mtime_ns
    leftover = subprocess.run(["pgrep", "-f", f"leakbench.serving {cache}"], capture_output=True)
    assert leftover.stdout == b""

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == run.returncode
    assert engine_jobs[0].stat().st_mtime_ns == started  # no engine: every completion was cached
