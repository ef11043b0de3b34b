"""End to end: attack tests on the `micro` model, through a real vLLM engine.

One benchmark subprocess with two attacks chosen and `-k quant8`: the selection must limit the
work to the quant8 attacked variants (the relearn5 ones are never trained), their tests and the
report's attack section must appear, and a gate on an attack metric must decide the exit status.
The run's cache shares the built model, planted model and variants with the suite's cache (they
are inputs here, not under test) and starts without attacked variants or completions.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("base-micro", "planted", "retrain", "variant")  # the stages before the attacks


@pytest.mark.training
@pytest.mark.engine
def test_selection_builds_only_the_selected_attack_and_its_gates_decide(tmp_path, cache_dir):
    cache = tmp_path / "cache"
    cache.mkdir()
    for stage in SHARED:
        (cache_dir / stage).mkdir(parents=True, exist_ok=True)
        (cache / stage).symlink_to(cache_dir / stage)
    command = [sys.executable, "-m", "pytest", "benchmark", "--model=micro", "--algo=none,kl",
               "--attacks=relearn5,quant8", "-p", "no:cacheprovider", f"--cache-dir={cache}",
               f"--report-dir={tmp_path / 'out'}", "-k", "quant8 and (email-dict or add-2-plus)",
               "-q",
               "--gate", "quant8_leak<=1", "--gate", "worst_case_leak<0"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-3000:]  # the worst_case_leak gate cannot hold

    built = [json.loads(m.read_text())["inputs"]
             for m in sorted((cache / "attacked").glob("*/manifest.json"))]
    assert sorted(inputs["attack"] for inputs in built) == ["quant8", "quant8"], output[-3000:]
    jobs = list((cache / "engine").glob("*/job.json"))
    assert len(jobs) == 1  # the attacked checkpoints joined the run's one engine

    assert "Leaks after attacks" in output
    assert "✓ quant8_leak<=1 holds on micro/kl" in output
    assert "✗ worst_case_leak<0 on micro/kl: " in output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    tests = {(o["algorithm"], o["attack"], o["metric"]) for o in results["outcomes"]}
    assert tests == {("none", "quant8", "direct_leak"), ("none", "quant8", "indirect_leak"),
                     ("kl", "quant8", "direct_leak"), ("kl", "quant8", "indirect_leak"),
                     ("none", "quant8", "capability")}
    rows = {row["algorithm"]: row["metrics"] for row in results["rows"]}
    assert {"quant8_leak", "worst_case_leak"} <= set(rows["kl"])
    assert "quant8_capability_pass1" in rows["none"]
