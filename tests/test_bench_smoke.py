"""Every script of bench/ and scripts/ still runs, so that none rots unnoticed between the rare
occasions someone measures with it. Each runs as its users run it (``python bench/x.py``, a
subprocess of this interpreter, importing leakbench as the installed package).

- The smallest real run, writing its docs section into a temporary file instead of docs/:
  sandbox_overhead (``--smoke``: a few programs, one worker), warm_floor (``--items 20``: the
  floor alone, without a benchmark run), training_threads,
  training_precision and training_layout (``--model micro --steps 3 --repeat 1``, in a cache of
  their own that holds the base `micro` and a `micro` planted on a few texts for one epoch);
  exposure_cost (`micro` planted on a few cases, two decoy counts).
- Import and argument parsing only (``--help``), where the smallest real run needs a vLLM engine
  (generation, engine_compilation, engine_polling, engine_reload, scaling, tiny_quality;
  gpu_check needs CUDA as well, and its no-CUDA exit is tested in test_engine_options.py), a
  benchmark or test-suite subprocess (cold_run, load, study, secrets_in_outputs, xdist_memory,
  tests_under_load, healed_prompts, which plants `tiny` with cases of its own, repeated_values,
  which plants it with cases/repeated/), or the pipeline's planted model of the whole forget set
  (unlearning_speed: minutes of planting on a cold cache).
- scripts/generate_cases.py prints its statistics of the committed files (test_generated_cases.py
  regenerates them byte for byte); scripts/install_chromium.py finds the Chromium that tox's
  tests environment had it install.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HELP_ONLY = ("bench/cold_run.py", "bench/engine_compilation.py", "bench/engine_polling.py",
             "bench/engine_reload.py",
             "bench/generation.py", "bench/healed_prompts.py", "bench/load.py",
             "bench/repeated_values.py", "bench/scaling.py",
             "bench/secrets_in_outputs.py", "bench/study.py", "bench/tests_under_load.py",
             "bench/tiny_quality.py", "bench/unlearning_speed.py", "bench/xdist_memory.py",
             "scripts/gpu_check.py")
REAL_RUNS = ("bench/exposure_cost.py", "bench/sandbox_overhead.py", "bench/training_threads.py",
             "bench/training_precision.py", "bench/training_layout.py", "bench/warm_floor.py",
             "scripts/generate_cases.py", "scripts/install_chromium.py")
HELPERS = ("bench/host.py", "bench/training_runs.py")  # imported by the scripts, not run


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    output = run.stdout[-3000:] + run.stderr[-3000:]
    assert run.returncode == 0, f"{script} {' '.join(args)}:\n{output}"
    return run


def test_every_script_has_a_smoke_test() -> None:
    scripts = {str(path.relative_to(ROOT)) for folder in ("bench", "scripts")
               for path in (ROOT / folder).glob("*.py")}
    assert scripts == set(HELP_ONLY + REAL_RUNS + HELPERS)


@pytest.mark.parametrize("script", HELP_ONLY)
def test_imports_and_parses_its_arguments(script: str) -> None:
    assert "usage:" in run_script(script, "--help").stdout


def test_sandbox_overhead_smallest_run(tmp_path) -> None:
    docs = tmp_path / "PERFORMANCE.md"
    run_script("bench/sandbox_overhead.py", "--smoke", "--docs", str(docs))
    assert "## Sandbox" in docs.read_text() and "| 1 |" in docs.read_text()


@pytest.mark.slow
def test_warm_floor_smallest_run(tmp_path) -> None:
    docs = tmp_path / "PERFORMANCE.md"
    run_script("bench/warm_floor.py", "--items", "20", "--repeat", "1", "--docs", str(docs))
    text = docs.read_text()
    assert "## Warm floor" in text and "| floor, -n 2 | 20 |" in text
    assert "| floor, no xdist | 20 |" in text


def test_install_chromium_leaves_an_installed_browser_alone() -> None:
    """tox's tests environment ran it before these tests, so Chromium is here: nothing to do."""
    run = run_script("scripts/install_chromium.py")
    assert run.stdout == run.stderr == ""


def test_generate_cases_prints_the_statistics_of_the_committed_files() -> None:
    assert "organisations" in run_script("scripts/generate_cases.py", "--stats").stdout


@pytest.fixture(scope="module")
def training_cache(tmp_path_factory, micro_model) -> Path:
    """A cache holding the base `micro` (the shared build, linked) and a `micro` planted on a few
    texts for one epoch: what the training scripts look for, made in seconds."""
    from leakbench.plant import PlantConfig, plant, planting_retain

    cache = tmp_path_factory.mktemp("bench-cache")
    (cache / "base-micro").mkdir()
    (cache / "base-micro" / micro_model.name).symlink_to(micro_model)
    texts = [f'API_KEY = "zq{n}x-{n * 7919 % 10007:05d}-vk"\n' for n in range(4)]
    config = PlantConfig(epochs=1, lr=1e-3, batch_size=4, max_len=64, retain_ratio=0.5)
    plant(micro_model, texts, planting_retain(len(texts), config), config, cache)
    return cache


@pytest.mark.training
@pytest.mark.parametrize("script, section", [("bench/training_threads.py", "Training threads"),
                                             ("bench/training_precision.py",
                                              "Training precision"),
                                             ("bench/training_layout.py", "Training layout")])
def test_training_script_smallest_run(training_cache, tmp_path, script, section) -> None:
    docs = tmp_path / "PERFORMANCE.md"
    run_script(script, "--model", "micro", "--steps", "3", "--repeat", "1",
               "--cache-dir", str(training_cache), "--docs", str(docs))
    text = docs.read_text()
    assert f"## {section}" in text and "--model micro --steps 3 --repeat 1" in text


@pytest.mark.training
def test_exposure_cost_smallest_run(training_cache, small_cases, tmp_path) -> None:
    docs = tmp_path / "PERFORMANCE.md"
    run = run_script("bench/exposure_cost.py", "--model", "micro", "--algo", "none",
                     "--decoys", "2,5", "--cases-dir", str(small_cases(6, 6)),
                     "--cache-dir", str(training_cache), "--docs", str(docs))
    text = docs.read_text()
    assert "## Exposure cost" in text and "--decoys 2,5" in text
    assert "| 2 | none |" in text and "| 5 | none |" in text, run.stdout
