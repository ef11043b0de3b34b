"""End to end: the benchmark on the `micro` model under pytest-xdist, through a real vLLM engine."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.training]

ROOT = Path(__file__).resolve().parents[1]


PREPARED = ["build micro", "plant", "unlearn kl", "attack none@quant4", "attack none@quant8",
            "attack kl@quant4", "attack kl@quant8", "generate"]


def stages(report_dir):
    manifest = json.loads((report_dir / "results.json").read_text())["manifest"]
    return {record["stage"]: record for record in manifest["stages"]}


def test_small_benchmark_under_xdist_starts_exactly_one_engine(tmp_path):
    """...and shows its stages on the controller's output as they end, before the tests'
    progress, and in the stage table of results.json: built on a cold cache, cached on a warm
    one."""
    cache, reports = tmp_path / "cache", tmp_path / "reports"
    command = [sys.executable, "-m", "pytest", "benchmark", "--model=micro", "--algo=none,kl",
               "-n", "2", "-p", "no:cacheprovider", f"--cache-dir={cache}",
               f"--report-dir={reports}",
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
    cold = stages(reports)
    assert {name: cold[name]["status"] for name in PREPARED} == dict.fromkeys(PREPARED, "built")
    assert cold["plant"]["steps"] > 0 and cold["plant"]["work"]["tokens"] > 0
    engine_parts = [name for name, record in cold.items() if record.get("part_of") == "generate"]
    assert engine_parts[0] == "engine start" and len(engine_parts) == 6  # start + 5 weight sets
    assert cold["generate"]["cpu_s"] >= sum(cold[name]["cpu_s"] for name in engine_parts)
    assert cold["tests"]["work"]["tests"] > 0
    lines = run.stdout.splitlines()
    first_test_line = next(i for i, line in enumerate(lines) if line.rstrip().endswith("%]"))
    shown = [line for line in lines[:first_test_line] if line.startswith("LeakBench ")]
    built = [line.split(":")[0].removeprefix("LeakBench ") for line in shown
             if ": built in" in line and not line.startswith("LeakBench engine")]
    assert sorted(built) == sorted(PREPARED) and built[:3] == PREPARED[:3]
    assert built[-1] == "generate"

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == run.returncode
    assert engine_jobs[0].stat().st_mtime_ns == started  # no engine: every completion was cached
    warm = stages(reports)
    assert {name: warm[name]["status"] for name in PREPARED} == dict.fromkeys(PREPARED, "cached")
    assert "engine start" not in warm
    assert "LeakBench generate: cached" in again.stdout
