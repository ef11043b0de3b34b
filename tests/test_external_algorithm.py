"""An algorithm from outside the package: one module and an entry point of the group
`leakbench.algorithms`, installed as pip installs a distribution (a `*.dist-info` directory with
METADATA and entry_points.txt beside the module) on the PYTHONPATH of a subprocess."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MODULE = '''"""Gradient ascent at half strength: the test's external algorithm.

    L = -gamma * NLL(forget),  gamma 0.5
"""

from algorithms import Algorithm


def loss(batch_forget, batch_retain, model, reference, *, gamma=0.5):
    from algorithms.losses import logits_of, mean_nll

    forget = mean_nll(logits_of(model, batch_forget), batch_forget["labels"])
    return -gamma * forget, {"forget": forget.item(), "retain": None, "halfga_gamma": gamma}


ALGORITHM = Algorithm("halfga", "gradient ascent at half strength (an external algorithm)", loss)
'''


@pytest.fixture
def site(tmp_path) -> Path:
    """A directory holding the installed distribution `halfga-plugin`."""
    site = tmp_path / "site"
    info = site / "halfga_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "halfga_plugin.py").write_text(MODULE)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: halfga-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[leakbench.algorithms]\nhalfga = halfga_plugin:ALGORITHM\n")
    return site


def environment(site: Path) -> dict:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "VLLM_CPU_KVCACHE_SPACE": "1"}


def test_an_installed_entry_point_joins_the_registry_options_and_hparams(site):
    code = ("import sys, algorithms; from leakbench.options import parse_algorithms; "
            "print(list(algorithms.registry()), parse_algorithms('halfga,kl'), "
            "algorithms.load_hparams('micro', 'halfga').constants, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment(site),
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ("['none', 'ga', 'gd', 'kl', 'npo', 'simnpo', 'selective', "
                                   "'kl_far', 'retrain', 'halfga'] ('kl', 'halfga') "
                                   "{'gamma': 0.5} False")


def test_a_broken_entry_point_is_a_one_line_error_naming_it(site):
    (site / "halfga_plugin.py").write_text("ALGORITHM = 'not an algorithm'\n")
    done = subprocess.run([sys.executable, "-c", "import algorithms; algorithms.registry()"],
                          cwd=ROOT, env=environment(site), capture_output=True, text=True)
    assert done.returncode != 0
    assert ("TypeError: entry point halfga = halfga_plugin:ALGORITHM (leakbench.algorithms): "
            "not an algorithms.Algorithm but str") in done.stderr


@pytest.mark.training
@pytest.mark.engine
def test_the_benchmark_trains_and_reports_an_external_algorithm(site, tmp_path, cache_dir):
    """`pytest benchmark --model=micro --algo=halfga` on a few direct-leak probes: the variant
    is unlearned with the external loss, and the report has its row."""
    cache, reports = tmp_path / "cache", tmp_path / "reports"
    for stage in ("base-micro", "planted"):  # copies: planting is not what this test is about
        if (cache_dir / stage).is_dir():
            shutil.copytree(cache_dir / stage, cache / stage,
                            ignore=shutil.ignore_patterns(".*"))
    command = [sys.executable, "-m", "pytest", "benchmark", "--model=micro", "--algo=halfga",
               "-p", "no:cacheprovider", f"--cache-dir={cache}", f"--report-dir={reports}",
               "-k", "test_direct_leak and email-dict", "-q"]
    run = subprocess.run(command, cwd=ROOT, env=environment(site), capture_output=True,
                         text=True, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode in (0, 1), output[-3000:]  # 1: some probes leak

    [variant] = [m.parent for m in (cache / "variant").glob("*/manifest.json")]
    inputs = json.loads((variant / "manifest.json").read_text())["inputs"]
    assert inputs["algorithm"] == "halfga" and inputs["hparams"]["gamma"] == 0.5
    log = json.loads((variant / "unlearning_log.json").read_text())
    assert log["algorithm"] == "halfga" and log["steps"] > 0
    assert all(record["halfga_gamma"] == 0.5 for record in log["records"])  # its loss ran

    outcomes = json.loads((reports / "results.json").read_text())["outcomes"]
    assert outcomes and {o["algorithm"] for o in outcomes} == {"halfga"}
    assert "halfga" in (reports / "results.md").read_text()
