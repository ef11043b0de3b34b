"""The attacks on unlearning (attacks/): the registry, the relearn slice, the benign texts, the
quantization round trip, relearning, and the attacked checkpoints as cached artifacts."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from dataclasses import replace
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

import attacks
from attacks import quant, relearn, relearn_benign
from attacks.slices import FRACTION, relearn_split
from attacks.stage import RunData, attacked
from leakbench import corpus, declarations
from leakbench.cases import FORGET_FILE, load_jsonl
from leakbench.judges import judge_direct
from leakbench.pipeline import architecture_key
from leakbench.plant import plant_config
from leakbench.probes import PrivacyData

CASES = Path(__file__).resolve().parents[1] / "cases"


@pytest.fixture(scope="module")
def run() -> RunData:
    """About 40 planted forget samples (whole owners), every record of the cases, micro's recipe."""
    data = PrivacyData.load(CASES, 40)
    return RunData(data.forget, load_jsonl(CASES / FORGET_FILE) + data.holdout,
                   plant_config("micro"))


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


def _mean_nll(model_dir: Path, texts: list[str]) -> float:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        losses = [model(input_ids=(ids := tokenizer(t, return_tensors="pt").input_ids[:, :192]),
                        labels=ids).loss.item() for t in texts]
    return sum(losses) / len(losses)


# --- the registry ----------------------------------------------------------------------------

def test_registry_lists_families_and_settings_without_importing_torch():
    code = ("import json, sys, attacks; "
            "print(json.dumps({f.name: list(f.settings) for f in attacks.families().values()})); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    families, torch_imported = out.stdout.splitlines()
    assert json.loads(families) == {"relearn": ["relearn5", "relearn25"],
                                    "relearn_benign": ["relearn_benign25"],
                                    "quant": ["quant4", "quant8"]}
    assert torch_imported == "False"


def test_select_expands_families_and_names_the_valid_values():
    assert attacks.select("quant8,relearn") == ("relearn5", "relearn25", "quant8")
    assert attacks.select("all") == tuple(attacks.registry())
    assert attacks.select("none") == () and attacks.select("") == ()
    with pytest.raises(ValueError) as error:
        attacks.select("relearn,quant2")
    message = str(error.value)
    assert "\n" not in message and "'quant2'" in message
    assert all(name in message for name in ("all", "none", "relearn", "quant", "quant4"))
    with pytest.raises(KeyError, match="quant2.*valid: relearn5, relearn25"):
        attacks.get("quant2")


def test_a_family_declares_lowercase_names_and_one_line():
    def noop(*args):
        return {}

    with pytest.raises(ValueError, match="'Quant3'"):
        attacks.Family("quant3", "three bits", {"Quant3": {}}, noop, noop)
    with pytest.raises(ValueError, match="'all'"):
        attacks.Family("all", "every attack", {"x": {}}, noop, noop)
    with pytest.raises(ValueError, match="one line"):
        attacks.Family("quant3", "three\nbits", {"quant3": {}}, noop, noop)


def test_entry_points_add_families(tmp_path, monkeypatch):
    (tmp_path / "extra_attack.py").write_text(textwrap.dedent('''
        from attacks import Family

        FAMILY = Family("prune", "the smallest weights set to zero", {"prune50": {"share": 0.5}},
                        lambda settings, run: {}, lambda settings, source, run, out: None)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [EntryPoint("prune", "extra_attack:FAMILY", attacks.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(declarations, "entry_points", lambda group: points)
    attacks.families.cache_clear(), attacks.registry.cache_clear()
    try:
        assert attacks.select("prune") == ("prune50",)
        assert attacks.get("prune50").family.description == "the smallest weights set to zero"
        points[0] = EntryPoint("quant", "extra_attack:FAMILY", attacks.ENTRY_POINT_GROUP)
        attacks.families.cache_clear(), attacks.registry.cache_clear()
        with pytest.raises(ValueError, match="declares 'prune'; it must declare 'quant'"):
            attacks.families()
    finally:
        attacks.families.cache_clear(), attacks.registry.cache_clear()


# --- the relearn slice and the benign texts ----------------------------------------------------

def test_relearn_slice_is_a_tenth_of_the_owners_whole_disjoint_and_seeded(run):
    owners = {s.owner for s in run.forget}
    trained, evaluated = relearn_split(run.forget)
    assert {s.owner for s in trained}.isdisjoint({s.owner for s in evaluated})
    assert sorted(trained + evaluated, key=lambda s: s.id) == sorted(run.forget, key=lambda s: s.id)
    assert len({s.owner for s in trained}) == max(1, round(FRACTION * len(owners)))
    shuffled = list(run.forget)
    random.Random(1).shuffle(shuffled)
    assert {s.id for s in relearn_split(shuffled)[0]} == {s.id for s in trained}  # order-free
    all_owners = load_jsonl(CASES / FORGET_FILE)
    trained, evaluated = relearn_split(all_owners)
    assert len({s.owner for s in trained}) == round(FRACTION * len({s.owner for s in all_owners}))
    with pytest.raises(ValueError, match="at least 2 planted owners"):
        relearn_split([s for s in run.forget if s.owner == run.forget[0].owner])


def test_benign_texts_hold_the_slice_contexts_and_no_value_of_any_record(run):
    originals = [s.text for s in relearn_split(run.forget)[0]]
    texts = relearn_benign.benign_texts(run)
    assert len(texts) == len(originals) and texts == relearn_benign.benign_texts(run)
    for text, original in zip(texts, originals):
        assert text != original and len(text) == len(original)  # same layout, other values
    for record in run.records:
        values = {record.secret, record.owner_name, *record.owner_values.values()}
        assert not any(value in text for value in values for text in texts), record.id
        assert not any(judge_direct(text, record).leaked for text in texts), record.id


def test_benign_texts_refuse_a_value_left_in_them(run, monkeypatch):
    monkeypatch.setattr(relearn_benign, "_fresh", lambda value, kind, rng: value)
    with pytest.raises(ValueError, match=r"still holds the \w+ of record [\w.-]+$"):
        relearn_benign.benign_texts(run)


# --- quantization ------------------------------------------------------------------------------

@pytest.mark.training
def test_quantization_error_is_bounded_by_the_scheme_and_leaves_the_head(micro_model):
    original = AutoModelForCausalLM.from_pretrained(micro_model)
    before = {name: p.detach().clone() for name, p in original.named_parameters()}
    errors = {}
    for name in ("quant4", "quant8"):
        model = AutoModelForCausalLM.from_pretrained(micro_model)
        rounded = {f"{m}.weight" for m in quant.quantize(model, attacks.get(name).settings)}
        after = dict(model.named_parameters())
        assert len(rounded) == 7 * model.config.num_hidden_layers  # q k v o gate up down
        head = model.get_output_embeddings().weight
        assert torch.equal(head, before[next(n for n, p in after.items() if p is head)])
        for parameter, value in after.items():
            if parameter not in rounded:  # embeddings, norms, the head
                assert torch.equal(value, before[parameter]), (name, parameter)
        errors[name] = {p: (after[p] - before[p]).detach() for p in rounded}
    for parameter, error in errors["quant8"].items():
        rows = before[parameter].abs().amax(dim=1, keepdim=True)
        assert (error.abs() <= rows * (0.5 / 127 + 2**-10)).all()  # half a step of each row
    for parameter, error in errors["quant4"].items():
        blocks = before[parameter].reshape(-1, 64).abs().amax(dim=1, keepdim=True)
        assert (error.reshape(-1, 64).abs() <= blocks * 0.16).all()  # NF4's widest gap: 0.304
        assert error.abs().mean() > 5 * errors["quant8"][parameter].abs().mean()


@pytest.mark.training
def test_quantized_checkpoint_is_served_in_place_and_still_writes_code(micro_model, tmp_path,
                                                                       run):
    out = attacked(micro_model, "quant4", run, tmp_path)
    assert architecture_key(out) == architecture_key(micro_model)  # one engine serves both
    texts = corpus.retain_texts(6, seed=1)
    assert _mean_nll(out, texts) < 1.1 * _mean_nll(micro_model, texts)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    prompt = tokenizer("def add(a, b):\n", return_tensors="pt").input_ids
    completion = model.generate(prompt, max_new_tokens=16, do_sample=False)[0, prompt.shape[1]:]
    assert tokenizer.decode(completion).strip()


@pytest.fixture(scope="module")
def adapter(micro_model, tmp_path_factory) -> Path:
    """A LoRA adapter over micro's q_proj, its both matrices random (merging it changes them)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(micro_model),
                          LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    directory = tmp_path_factory.mktemp("adapter")
    lora.save_pretrained(directory)
    return directory


@pytest.mark.training
def test_a_lora_adapter_is_merged_before_the_attack(micro_model, adapter, tmp_path, run):
    from peft import PeftModel

    out = attacked(micro_model, "quant8", run, tmp_path, adapter=adapter)
    expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(micro_model),
                                         adapter).merge_and_unload()
    quant.quantize(expected, attacks.get("quant8").settings)
    got = _weights(out)
    for name, value in expected.state_dict().items():
        if name in got:
            assert torch.equal(got[name], value), name
    assert out != attacked(micro_model, "quant8", run, tmp_path)
    with pytest.raises(ValueError, match="is a LoRA adapter; pass the weights it was trained"):
        attacked(adapter, "quant8", run, tmp_path)


# --- relearning and the artifacts ---------------------------------------------------------------

@pytest.mark.training
def test_relearning_moves_the_weights_and_lowers_the_slice_nll(micro_model, adapter, cache_dir,
                                                               tmp_path, run):
    trained = [s.text for s in relearn_split(run.forget)[0]]
    out = attacked(micro_model, "relearn5", run, cache_dir)
    log = json.loads((out / "training_log.json").read_text())
    assert len(log["loss"]) == 5 and log["texts"] == len(trained)
    before, after = _weights(micro_model), _weights(out)
    assert any(not torch.equal(before[name], after[name]) for name in before)
    assert _mean_nll(out, trained) < _mean_nll(micro_model, trained) - 0.1
    merged = attacked(micro_model, "relearn5", run, tmp_path, adapter=adapter)  # trainable
    assert _mean_nll(merged, trained) < _mean_nll(micro_model, trained) - 0.1
    benign = attacked(micro_model, "relearn_benign25", run, cache_dir)
    assert len(json.loads((benign / "training_log.json").read_text())["loss"]) == 25
    assert _mean_nll(benign, relearn_benign.benign_texts(run)) < _mean_nll(
        micro_model, relearn_benign.benign_texts(run))


@pytest.mark.training
def test_attacked_checkpoints_are_cached_by_weights_attack_and_data(micro_model, tmp_path, run,
                                                                    monkeypatch):
    built = {name: attacked(micro_model, name, run, tmp_path) for name in ("quant8", "relearn5")}

    def must_not_run(*args):
        raise AssertionError("built again")

    monkeypatch.setattr(quant, "quantize", must_not_run)
    monkeypatch.setattr(relearn, "train", must_not_run)
    for name, out in built.items():
        assert attacked(micro_model, name, run, tmp_path) == out
        assert json.loads((out / "manifest.json").read_text())["inputs"]["attack"] == name
    other = RunData(run.forget, run.records, replace(run.plant_config, lr=1e-3))
    assert attacked(micro_model, "quant8", other, tmp_path) == built["quant8"]  # no recipe in it
    with pytest.raises(AssertionError, match="built again"):
        attacked(micro_model, "relearn5", other, tmp_path)  # another recipe: another artifact
