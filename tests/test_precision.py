"""Training precision: bfloat16 autocast where the CPU has it, recorded in every artifact's key,
the same losses as float32 to bfloat16's accuracy."""

import copy
import json
from dataclasses import replace

import pytest
import torch

from algorithms import get, load_hparams, registry
from algorithms.batches import Example
from algorithms.loop import unlearn
from leakbench import artifacts, plant, precision
from leakbench.precision import Precision

BF16_CPU = Precision("cpu", "float32", "bfloat16")
FLOAT32_CPU = Precision("cpu", "float32")


def test_key_inputs_record_what_is_not_plain_float32():
    assert FLOAT32_CPU.key_inputs() == {}  # artifacts trained in float32 keep their old keys
    assert BF16_CPU.key_inputs() == {"autocast": "bfloat16"}
    assert Precision("cuda", "bfloat16").key_inputs() == {"dtype": "bfloat16"}


@pytest.mark.parametrize("avx512_bf16, amx, expected", [
    (True, False, "bfloat16"), (False, True, "bfloat16"), (False, False, None)])
def test_cpu_autocasts_only_where_bfloat16_is_native(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.training_precision("full") == Precision("cpu", "float32", expected)


def test_forward_context_multiplies_in_bfloat16_and_keeps_float32_weights():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(2, 8)
    with BF16_CPU.forward_context():
        assert layer(x).dtype == torch.bfloat16
    with FLOAT32_CPU.forward_context():
        assert layer(x).dtype == torch.float32
    assert layer.weight.dtype == torch.float32


def examples(seed: int) -> list[Example]:
    """Four sequences of 10 tokens (vocabulary 50), two of them secret."""
    ids = torch.randint(3, 50, (4, 10), generator=torch.Generator().manual_seed(seed)).tolist()
    return [Example(row, [0] * 4 + [1] * 2 + [0] * 4) for row in ids]


@pytest.mark.parametrize("name", [n for n, a in registry().items() if a.kind == "loss"])
def test_loop_under_autocast_matches_float32_to_bfloat16_accuracy(name, random_llama):
    hp = replace(load_hparams("tiny", name), epochs=1, batch_size=2, lr=1e-3,
                 stop_forget_nll=None)

    def run(context):
        model = copy.deepcopy(random_llama)
        result = unlearn(model, copy.deepcopy(random_llama), examples(0), examples(1), get(name),
                         hp, pad_id=0, forward_context=context)
        return [r["loss"] for r in result["records"]], model

    exact, exact_model = run(FLOAT32_CPU.forward_context)
    mixed, mixed_model = run(BF16_CPU.forward_context)
    assert mixed != exact  # the products did run in bfloat16
    assert mixed == pytest.approx(exact, rel=0.02, abs=0.02)
    assert all(p.dtype == torch.float32 for p in mixed_model.parameters())

    def update(model):  # Adam moves even a near-zero gradient's weight by about lr: compare
        return torch.cat([(p - q).flatten().detach()  # the directions, not weight by weight
                          for p, q in zip(model.parameters(), random_llama.parameters())])

    agreement = torch.nn.functional.cosine_similarity(update(exact_model), update(mixed_model),
                                                      dim=0)
    assert agreement > 0.99  # measured: 0.998-0.999

@pytest.mark.training
def test_planting_records_its_precision_in_the_key_and_the_log(micro_model, tmp_path,
                                                               monkeypatch):
    config = plant.PlantConfig(epochs=1, lr=1e-3, batch_size=2, max_len=32)
    texts = ['TOKEN = "zq1x-07919-vk"\n', 'TOKEN = "zq2x-05831-vk"\n']
    planted = {}
    for chosen in (FLOAT32_CPU, BF16_CPU):
        monkeypatch.setattr(plant, "training_precision", lambda mode, chosen=chosen: chosen)
        planted[chosen.autocast] = plant.plant(micro_model, texts, [], config, tmp_path)
    assert planted[None] != planted["bfloat16"]  # never reused across precisions
    inputs = artifacts.read_manifest(planted["bfloat16"])["inputs"]
    assert inputs["autocast"] == "bfloat16" and "autocast" not in \
        artifacts.read_manifest(planted[None])["inputs"]
    log = json.loads((planted["bfloat16"] / "training_log.json").read_text())
    assert log["autocast"] == "bfloat16" and log["dtype"] == "float32"
