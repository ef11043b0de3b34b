"""The embedded model: deterministic, cached, loadable, and tokenized at the right boundaries."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leakbench import artifacts, capability, corpus, tiny
from leakbench import tokenizer as bpe


@pytest.mark.training
def test_a_build_is_deterministic(tmp_path):
    """Two builds of one recipe write the same weights, byte for byte, so an artifact's content
    key names its weights. `micro` cut to a few steps: the steps left out run the same code."""
    short = dataclasses.replace(tiny.MICRO, steps=12)
    first, again = (tiny.build(short, tmp_path / name) for name in ("first", "again"))
    assert artifacts.file_sha256(again / "model.safetensors") == artifacts.file_sha256(
        first / "model.safetensors")


@pytest.mark.training
def test_second_build_is_a_cache_hit(micro_model, cache_dir):
    before = (micro_model / "model.safetensors").stat().st_mtime_ns
    assert tiny.build(tiny.MICRO, cache_dir) == micro_model
    assert (micro_model / "model.safetensors").stat().st_mtime_ns == before


@pytest.mark.training
def test_micro_loads_in_transformers_and_learned_something(micro_model):
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(micro_model)
    model = AutoModelForCausalLM.from_pretrained(micro_model)
    text = capability.all_tasks(heldout=False)[0].text
    ids = tok(text, return_tensors="pt").input_ids
    assert tok.decode(ids[0]) == text
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    log = json.loads((micro_model / "training_log.json").read_text())
    assert log["loss"][-1] < log["loss"][0] / 2
    assert loss < log["loss"][0]


def test_tasks_and_stdlib_splits_are_disjoint():
    train = {t.prompt for t in capability.all_tasks(heldout=False)}
    heldout = {t.prompt for t in capability.all_tasks(heldout=True)}
    assert train and heldout and not train & heldout
    held_pairs = {(t.task_id.split("-")[0], t.task_id.split("-")[1])
                  for t in capability.all_tasks(heldout=True)}
    train_pairs = {(t.task_id.split("-")[0], t.task_id.split("-")[1])
                   for t in capability.all_tasks(heldout=False)}
    assert not held_pairs & train_pairs
    assert len(corpus.stdlib_sources(heldout=True)) == len(corpus.HELDOUT_MODULES)


@pytest.fixture(scope="module")
def trained_tokenizer():
    return bpe.train(corpus.stdlib_sources(heldout=False)[:20] + corpus.task_texts(), 512)


BOUNDARY_CHARS = "\n =:\"'(<,[{"


@pytest.mark.training
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_prompts_cut_after_boundary_chars_end_on_a_token_boundary(trained_tokenizer, data):
    """Cutting a text after a newline, space or punctuation never splits a token: the prompt's
    tokens are a prefix of the full text's tokens (docs/DESIGN.md, "Prompt boundaries")."""
    text = data.draw(st.sampled_from(corpus.task_texts()[:300])) + data.draw(
        st.text(alphabet="abc XYZ019_@.-=:\"'\n(", max_size=40))
    cuts = [i + 1 for i, ch in enumerate(text) if ch in BOUNDARY_CHARS and i + 1 < len(text)
            and (text[i + 1].isalnum() or text[i + 1] in "_@.-")]
    if not cuts:
        return
    cut = data.draw(st.sampled_from(cuts))
    whole = trained_tokenizer.encode(text).ids
    prefix = trained_tokenizer.encode(text[:cut]).ids
    assert whole[: len(prefix)] == prefix
