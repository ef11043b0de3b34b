"""--endpoint against a real OpenAI-compatible vLLM server of the `micro` model on loopback."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from leakbench import endpoint, models, pipeline
from leakbench.probes import PrivacyData
from leakbench.schema import Request, Sampling, cut_at_stops

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(cache_dir, tmp_path_factory):
    """A vLLM server with the planted micro model as base and its `kl` variant as a LoRA module."""
    data = PrivacyData.load(ROOT / "cases")
    variants = pipeline.build_variants(models.lookup("micro"), ("none", "kl"), data, cache_dir,
                                       rebuild=False)
    port = _free_port()
    log = open(tmp_path_factory.mktemp("server") / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
         "--model", str(variants["none"].weights), "--served-model-name", "none",
         "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
         "--max-model-len", "1024", "--enable-lora", "--max-lora-rank", "16",
         "--lora-modules", f"kl={variants['kl'].adapter}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("vLLM server did not come up:\n"
                                + Path(log.name).read_text(errors="replace")[-3000:])
                time.sleep(2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.engine
@pytest.mark.training
def test_variants_are_addressed_by_model_name(server):
    served = endpoint.served_models(server)
    assert set(served) == {"none", "kl"}
    assert endpoint.model_for("kl", served, server) == "kl"
    assert endpoint.model_for("none", served, server) == "none"


def test_an_algorithm_the_server_does_not_serve_is_an_error_not_the_base_model():
    served = ["codellama/CodeLlama-7b-hf", "kl"]
    assert endpoint.model_for("none", served, "http://h:8000") == served[0]  # the planted model
    with pytest.raises(endpoint.EndpointError, match=(
            r"^--algo gd: http://h:8000 serves no model named 'gd' \(it serves codellama/"
            r"CodeLlama-7b-hf, kl\); start the server with --lora-modules gd=ADAPTER_DIR, or "
            r"leave gd out of --algo$")):
        endpoint.model_for("gd", served, "http://h:8000")


@pytest.mark.engine
@pytest.mark.training
def test_batched_completions_come_back_in_order(server):
    greedy = Sampling(max_tokens=8)
    sampled = Sampling(n=2, temperature=0.8, max_tokens=8, seed=1, top_k=20)  # vLLM takes top_k
    prompts = [f'def f{i}(x):\n    """Return x plus {i}."""\n' for i in range(40)]
    requests = [Request(p, greedy) for p in prompts] + [Request(prompts[0], sampled)]
    server_generator = endpoint.Endpoint(server)
    out = server_generator.generate({"kl": requests, "none": requests[:3]})
    assert [len(c) for c in out["kl"]] == [1] * 40 + [2]
    single = server_generator.generate({"kl": [requests[7]]})["kl"]
    assert single[0] == out["kl"][7]  # greedy: the same text alone as in a batch of 40
    assert len(out["none"]) == 3  # the base model, in the same batch of calls


@pytest.mark.engine
@pytest.mark.training
def test_the_benchmark_runs_through_the_endpoint(server, tmp_path):
    cache = tmp_path / "cache"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmark", "--model=micro", "--algo=none,kl",
         f"--endpoint={server}", f"--cache-dir={cache}", "-p", "no:cacheprovider", "-q",
         "-k", "email-dict or HumanEval-00"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode in (0, 1), (run.stdout + run.stderr)[-3000:]
    assert not (cache / "engine").exists()  # no local engine, no local training
    shards = list((cache / "completions").glob("*/*.json"))
    assert len(shards) == 2 and all(json.loads(s.read_text()) for s in shards)


def test_stops_past_the_server_limit_are_applied_to_the_text():
    stops = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif")
    assert cut_at_stops("    return 1\nprint(x)\nif y", stops) == "    return 1"
    assert cut_at_stops("    return 1", stops) == "    return 1"
