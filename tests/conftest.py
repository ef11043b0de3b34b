"""Fixtures shared by the harness's own tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# As tox.ini sets it, for a `pytest tests -n 2` run outside tox too: two workers train at once,
# and OpenMP threads that spin while they wait starve the other worker's. Set before any test
# module imports torch (which reads it once); the benchmark subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# No per-example deadline: a property fails on a wrong result, not on a machine that is busy.
settings.register_profile("leakbench", deadline=None)
settings.load_profile("leakbench")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """The artifact cache: LEAKBENCH_CACHE_DIR when set (tox keeps one per checkout), else a
    directory shared by the xdist workers of this run."""
    configured = os.environ.get("LEAKBENCH_CACHE_DIR")
    if configured:
        return Path(configured)
    return tmp_path_factory.getbasetemp().parent / "leakbench-cache"


@pytest.fixture(scope="session")
def micro_model(cache_dir) -> Path:
    """The toy-sized embedded model, built once per cache (artifacts are locked across workers)."""
    from leakbench import tiny

    return tiny.build(tiny.MICRO, cache_dir)


@pytest.fixture(scope="module")
def random_llama():
    """A randomly initialized one-layer Llama (vocabulary 50): for shapes and padding checks."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
        pad_token_id=0, bos_token_id=1, eos_token_id=2)).eval()


@pytest.fixture
def benchmark_pytester(pytester):
    """pytester in a directory laid out as a benchmark is: its conftest.py activates LeakBench's
    plugin (as benchmark/conftest.py does) and its cases/ are the project's."""
    pytester.makeconftest('pytest_plugins = ("leakbench.plugin",)')
    (pytester.path / "cases").symlink_to(Path(__file__).resolve().parents[1] / "cases")
    return pytester


@pytest.fixture
def small_cases(tmp_path):
    """A cases directory with the first `forget` and `holdout` samples of the project's cases,
    and its decoys."""
    root = Path(__file__).resolve().parents[1]

    def make(forget: int, holdout: int) -> Path:
        directory = tmp_path / "cases"
        directory.mkdir()
        for name, count in (("forget.jsonl", forget), ("holdout.jsonl", holdout)):
            lines = (root / "cases" / name).read_text().splitlines()[:count]
            (directory / name).write_text("\n".join(lines) + "\n")
        (directory / "decoys.json").write_bytes((root / "cases" / "decoys.json").read_bytes())
        return directory

    return make


@pytest.fixture
def cases_dir(tmp_path, monkeypatch) -> Path:
    """An empty cases/ directory; paths in error messages are relative to its parent."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cases").mkdir()
    return tmp_path / "cases"
