"""The training entry point, `python -m leakbench.train`, under a real 2-process launch.

`accelerate launch --multi_gpu --num_processes 2` with ACCELERATE_USE_CPU=true is DDP over gloo on
this machine's CPUs: accelerate 1.15's `--cpu --num_processes 2` starts one process only (its
multi-CPU launch goes through mpirun), and FSDP needs GPUs. The launch plants `micro` on a few
cases (full-parameter) and unlearns it with `kl` (a frozen reference, retain batches, micro's
LoRA adapter); a single-process run of the benchmark's own code must then find every artifact
cached. A second launch unlearns full-parameter (tests/launched_unlearning.py): both processes
must end with the same weights.
"""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from leakbench import artifacts, models, pipeline, plant, unlearn
from leakbench.plant import plant_config
from leakbench.probes import PrivacyData

pytestmark = [pytest.mark.training]

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(*program: str) -> subprocess.CompletedProcess:
    """`program` (a script and its arguments, or -m and a module) under a 2-process launch."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(_free_port()), *program]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1",
           "TQDM_DISABLE": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_two_process_launch_builds_what_a_single_process_run_finds(micro_model, tmp_path,
                                                                     monkeypatch, small_cases):
    cache = tmp_path / "cache"
    shutil.copytree(micro_model, cache / micro_model.parent.name / micro_model.name)
    cases = small_cases(24, 8)
    run = _launch("-m", "leakbench.train", "--model", "micro", "--algo", "kl",
                  f"--cases-dir={cases}", f"--cache-dir={cache}")
    assert run.returncode == 0, run.stderr[-3000:]
    name, key, adapter = run.stdout.split()  # process 0 alone reports
    assert name == "kl" and Path(adapter) == cache / "variant" / key

    # Every artifact is complete, and was trained by both processes.
    [planted] = [p for p in (cache / "planted").iterdir() if not p.name.startswith(".")]
    assert artifacts.is_intact(planted) and artifacts.is_intact(Path(adapter))
    assert json.loads((planted / "training_log.json").read_text())["processes"] == 2
    log = json.loads((Path(adapter) / "unlearning_log.json").read_text())
    assert log["processes"] == 2 and log["steps"] == 12  # micro: 2 epochs, 6 batches of 4
    assert not list(cache.glob("*/.*.tmp-*"))

    # It loads: the planted weights and the adapter over them.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(planted)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(planted), adapter)
    ids = tokenizer("def add(a, b):\n", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids).logits).all()

    # The benchmark's own code, in one process, finds them under the same keys: it trains nothing.
    def trains(*args, **kwargs):
        pytest.fail("a single-process run did not find the launch's artifacts")

    monkeypatch.setattr(plant, "_train", trains)
    monkeypatch.setattr(unlearn, "_unlearn_into", trains)
    spec = models.lookup("micro")
    data = PrivacyData.load(cases, plant_config(models.family(spec)).forget_samples)
    variants = pipeline.build_variants(spec, ("none", "kl"), data, cache, rebuild=False)
    assert variants["none"].weights == planted and variants["kl"].adapter == Path(adapter)
    assert variants["kl"].key == key


def test_full_parameter_unlearning_on_two_processes_keeps_them_in_step():
    run = _launch(str(ROOT / "tests" / "launched_unlearning.py"))
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["processes"] == 2 and result["steps"] == 6  # 2 epochs x 3 batches
    assert all(math.isfinite(loss) for loss in result["losses"])
    first, second = result["checksums"]
    assert first == second  # the same weights on both: the gradients were averaged
