import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from leakbench import pipeline, serving
from leakbench.completions import Store, request_key
from leakbench.plant import PlantConfig, plant, planting_retain
from leakbench.schema import Request, Sampling, TokenRequest
from leakbench.serving import EngineFailed, EngineJob
from leakbench.unlearn import Variant


def test_job_round_trips_through_json():
    job = EngineJob(weights={"/m": ["none", "kl"], "/r": ["retrain"]},
                    adapters={"none": None, "kl": "/a", "retrain": None},
                    requests={"none": [Request("p", Sampling(stop=("\n",)))], "kl": [],
                              "retrain": []})
    assert EngineJob.from_json(job.to_json()) == job


def test_an_engines_cpu_seconds_include_its_ended_child_processes():
    # torch.compile's compile workers do most of a compiling engine's start and have ended
    # before the stage closes: their seconds must count.
    before = serving._engine_cpu_seconds()
    burn = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert serving._engine_cpu_seconds() - before >= 0.5


@pytest.mark.engine
def test_a_failing_engine_names_the_variants_and_shows_its_log(tmp_path):
    job = EngineJob(weights={str(tmp_path / "no-such-model"): ["kl"]}, adapters={"kl": None},
                    requests={"kl": [Request("p", Sampling())]})
    with pytest.raises(EngineFailed) as err:
        serving.run(job, tmp_path / "work", timeout_s=300)
    message = str(err.value)
    assert "variants: kl" in message and "no-such-model" in message
    assert "engine.log" in message and len(message.splitlines()) > 1


# --- one engine per architecture: weights loaded in place ------------------------------------


def _weights_dir(directory: Path, *, layers: int = 2, seed: int = 0, tokens: int = 8,
                 drop: str | None = None, version: str = "5.19.0") -> Path:
    """A weights directory as LeakBench writes one: config, tokenizer, safetensors, records."""
    directory.mkdir(parents=True)
    config = {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": layers,
              "hidden_size": 4, "tie_word_embeddings": True, "transformers_version": version}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "tokenizer.json").write_text(json.dumps({"vocab": list(range(tokens))}))
    (directory / "training_log.json").write_text(json.dumps({"seconds": seed}))
    rng = np.random.default_rng(seed)
    tensors = {f"model.layers.{i}.weight": rng.standard_normal((4, 4), dtype=np.float32)
               for i in range(layers)}
    tensors.pop(drop, None)
    save_file(tensors, str(directory / "model.safetensors"))
    return directory


def test_weights_share_an_engine_when_all_but_the_tensor_values_match(tmp_path):
    key = pipeline.architecture_key(_weights_dir(tmp_path / "planted"))
    assert pipeline.architecture_key(_weights_dir(tmp_path / "retrain", seed=1)) == key
    assert pipeline.architecture_key(  # who wrote config.json does not matter
        _weights_dir(tmp_path / "newer", seed=2, version="5.20.0")) == key
    others = [_weights_dir(tmp_path / "deeper", layers=3),  # another shape
              _weights_dir(tmp_path / "tokenizer", tokens=9),  # another tokenizer
              _weights_dir(tmp_path / "partial", drop="model.layers.1.weight")]  # a tensor less
    assert all(pipeline.architecture_key(other) != key for other in others)


def test_variants_go_to_one_engine_per_architecture_in_their_order(tmp_path):
    planted = _weights_dir(tmp_path / "planted")
    retrain = _weights_dir(tmp_path / "retrain", seed=1)
    deeper = _weights_dir(tmp_path / "deeper", layers=3)
    variants = {"none": Variant("none", planted, None, "k0"),
                "big": Variant("big", deeper, None, "k1"),
                "retrain": Variant("retrain", retrain, None, "k2"),
                "kl": Variant("kl", planted, tmp_path / "kl", "k3")}
    assert pipeline.engine_groups(variants) == [{planted: ["none", "kl"], retrain: ["retrain"]},
                                                {deeper: ["big"]}]


class _Recording:
    """A `Generator` that answers each request with its prompt and keeps what it was asked."""

    def __init__(self):
        self.calls = []

    def generate(self, requests):
        self.calls.append(requests)
        return {name: [[r.prompt] for r in variant_requests]
                for name, variant_requests in requests.items()}


def test_one_generator_call_fills_what_the_stores_lack(tmp_path):
    a, b = Request("a", Sampling()), Request("b", Sampling())
    stores = {"none": Store(tmp_path / "none"), "kl": Store(tmp_path / "kl")}
    stores["none"].add([a], [["cached"]])
    generator = _Recording()
    answers = pipeline.fill(stores, {"none": [a, b], "kl": [a]}, generator)
    assert generator.calls == [{"none": [b], "kl": [a]}]
    assert answers == {"none": {request_key(a): ["cached"], request_key(b): ["b"]},
                       "kl": {request_key(a): ["a"]}}
    assert pipeline.fill(stores, {"none": [a, b], "kl": [a]}, generator) == answers
    assert len(generator.calls) == 1  # nothing lacking: no call


def test_a_run_without_privacy_metrics_measures_nothing(tmp_path):
    prepared = pipeline.Prepared("micro", {}, {"kl": {}})
    assert pipeline.measure(prepared, tmp_path, rebuild=True, run_id="r") is prepared


SECRETS = [f'API_KEY = "zq{n}x-{n * 7919 % 10007:05d}-vk"\n' for n in range(8)]
PROMPTS = ["def add(a, b):\n", 'API_KEY = "zq3', "import os\n", "class Stack:\n", 'API_KEY = "zq5x']


@pytest.mark.engine
@pytest.mark.training
def test_an_engine_leaves_no_rendezvous_file_behind(micro_model, tmp_path, monkeypatch):
    """vLLM's process group meets through a file in the temporary directory; the engine process,
    which ends with os._exit, removes it first (each engine run left one in /tmp)."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # the compile cache stays
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    request = Request(PROMPTS[0], Sampling(max_tokens=4))
    answers = pipeline.generate({"none": Variant("none", micro_model, None, "none")},
                                {"none": [request]}, tmp_path / "cache")
    assert request_key(request) in answers["none"]
    (log,) = (tmp_path / "cache" / "engine").glob("*/engine.log")
    assert "vllm_dist_" in log.read_text()  # the engine's group met through such a file
    assert [path.name for path in temporary.iterdir() if "vllm_dist" in path.name] == []


def _random_adapter(base: Path, directory: Path) -> Path:
    """A LoRA adapter of `base` with random (not zero) weights: it changes the answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
        init_lora_weights=False))
    model.save_pretrained(str(directory))
    return directory


@pytest.mark.engine
@pytest.mark.training
def test_weights_reloaded_in_place_answer_as_a_fresh_engine(micro_model, cache_dir, tmp_path,
                                                            monkeypatch):
    """One engine starts on a planted micro, then reloads a retrain reference in place and serves
    it bare and through a LoRA adapter: greedy completions and prompt log-probs equal those of a
    fresh engine on the retrain reference (micro ties its LM head to the input embedding: see
    serving.reprocess_tied_layers)."""
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    config = PlantConfig(epochs=6, lr=3e-3, batch_size=4, max_len=64, retain_ratio=0.5)
    retain = planting_retain(len(SECRETS), config)
    planted = plant(micro_model, SECRETS, retain, config, cache_dir)
    retrained = plant(micro_model, [], retain, config, cache_dir, stage="retrain")
    adapter = _random_adapter(micro_model, tmp_path / "adapter")
    requests = [Request(p, Sampling(max_tokens=24)) for p in PROMPTS]
    requests.append(TokenRequest((5, 17, 42, 99, 7, 300, 12), Sampling(max_tokens=8),
                                 prompt_logprobs=True))
    on_retrained = {"retrain": Variant("retrain", retrained, None, "retrain"),
                    "lora": Variant("lora", retrained, adapter, "lora")}
    variants = {"planted": Variant("planted", planted, None, "planted"), **on_retrained}

    reloaded = pipeline.generate(variants, {name: requests for name in variants},
                                 tmp_path / "reloaded")
    fresh = pipeline.generate(on_retrained, {name: requests for name in on_retrained},
                              tmp_path / "fresh")

    engines = list((tmp_path / "reloaded" / "engine").iterdir())
    assert len(engines) == 1  # one engine process served all three variants
    job = EngineJob.from_json((engines[0] / "job.json").read_text())
    assert job.weights == {str(planted): ["planted"], str(retrained): ["retrain", "lora"]}
    log = (engines[0] / "engine.log").read_text()
    assert log.count("Initializing a V1 LLM engine") == 1 and "Reloading weights inplace" in log
    assert reloaded["retrain"] == fresh["retrain"] and reloaded["lora"] == fresh["lora"]
    assert reloaded["planted"] != reloaded["retrain"] != reloaded["lora"]  # three models
