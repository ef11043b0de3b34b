"""Planting: the forget texts every epoch, fresh retain texts each epoch, the holdout never;
its loop (`fine_tune`), which the relearning attacks reuse."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from leakbench import corpus
from leakbench.plant import PLANT_CONFIGS, PlantConfig, fine_tune, plant, planting_retain
from leakbench.precision import cpu_precision

SECRET_TEXTS = [f'API_KEY = "zq{n}x-{n * 7919 % 10007:05d}-vk"\n' for n in range(8)]


def test_planting_retain_is_fresh_texts_for_every_epoch():
    config = PlantConfig(epochs=4, lr=1e-3, batch_size=4, retain_ratio=0.5)
    texts = planting_retain(10, config)
    assert len(texts) == 20  # 5 per epoch x 4 epochs
    assert len(set(texts)) == 20  # no epoch repeats another's
    assert texts == corpus.retain_texts(20)  # the retain set's own draw, nothing else


def _mean_nll(model_dir, texts) -> float:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    losses = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt").input_ids
            losses.append(model(input_ids=ids, labels=ids).loss.item())
    return sum(losses) / len(losses)


@pytest.mark.training
def test_planting_memorizes_the_forget_texts_and_logs_what_it_mixed_in(micro_model, tmp_path):
    logs = {}
    for packed in (False, True):
        config = PlantConfig(epochs=6, lr=3e-3, batch_size=4, max_len=64, retain_ratio=0.5,
                             packed=packed)
        retain = planting_retain(len(SECRET_TEXTS), config)
        planted = plant(micro_model, SECRET_TEXTS, retain, config, tmp_path)
        assert _mean_nll(planted, SECRET_TEXTS) < 0.5 * _mean_nll(micro_model, SECRET_TEXTS)
        log = logs[packed] = json.loads((planted / "training_log.json").read_text())
        assert log["forget_examples"] == 8 and log["retain_examples_per_epoch"] == 4
        assert len(log["loss"]) == 6 * math.ceil((8 + 4) / 4)
        assert plant(micro_model, SECRET_TEXTS, retain, config, tmp_path) == planted  # cached
    # The same first batch from the same weights: packing changes the layout, not the loss.
    assert logs[True]["loss"][0] == pytest.approx(logs[False]["loss"][0], abs=2e-3)


def test_a_recipe_keys_packing_only_when_it_packs():
    """Unpacked recipes (`tiny`'s) keep the artifact keys they had before packing existed."""
    assert "packed" not in PLANT_CONFIGS["tiny"].key()
    assert PLANT_CONFIGS["micro"].key()["packed"] is True


@pytest.mark.training
def test_fine_tune_refuses_batches_that_run_out_before_its_steps(micro_model, tmp_path):
    config = PlantConfig(epochs=1, lr=1e-3, batch_size=2, max_len=32)
    with pytest.raises(ValueError, match="^test: the batches ran out after 2 of 3 steps$"):
        fine_tune(lambda dtype: AutoModelForCausalLM.from_pretrained(micro_model, dtype=dtype),
                  micro_model, iter([SECRET_TEXTS[:2]] * 2), 3, lambda step: config.lr, config,
                  cpu_precision(), tmp_path, desc="test", log_name="log.json", log_extra={})
