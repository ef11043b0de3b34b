"""The unlearning algorithms: losses against hand-computed values, padding, directions, the
encoding of secrets, the shared loop, the registry and the hyper-parameter file."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import algorithms
from algorithms import BUILT_IN, get, load_hparams, losses, registry
from algorithms.batches import Example, collate, encode_document, encode_forget, pack
from algorithms.hparams import HPARAMS_PATH
from algorithms.loop import unlearn
from leakbench.tune import hparams_file
from leakbench.unlearn import key_hparams

ROOT = Path(__file__).resolve().parents[1]
LOSS_ALGORITHMS = [name for name, a in registry().items() if a.kind == "loss"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: a second intra-op thread only waits on a busy shared core (seen
    here: one training step 100x slower with 2 threads under load than with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- tiny models ----------------------------------------------------------------------------

class Bigram(nn.Module):
    """logits[b, t] = table[input_ids[b, t]]: each next-token distribution is a row of `probs`,
    so every loss can be computed by hand, and padding cannot leak into real positions."""

    def __init__(self, probs):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(probs, dtype=torch.float32).log())

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return SimpleNamespace(logits=self.table[input_ids])


P = [[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]  # the model being unlearned
Q = [[0.25, 0.5, 0.25], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]]  # the reference

# Forget: targets of A are 1|0 (context), 2|1 and 2|2 (secret); of B, 0|1 (secret).
FORGET = [Example([0, 1, 2, 2], [0, 0, 1, 1]), Example([1, 0], [0, 1])]
RETAIN = [Example([2, 0, 1], [0, 0, 0]), Example([1, 1], [0, 0])]
PAD = 0  # also a real token here: labels must come from lengths, not from the pad id


def tiny_llama(seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
        pad_token_id=0, bos_token_id=1, eos_token_id=2))


def random_examples(n: int, seed: int, secret: bool) -> list[Example]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(4, 12, (1,), generator=g))
        ids = torch.randint(3, 50, (length,), generator=g).tolist()
        mask = [0] * length
        if secret:
            mask[length // 2 : length // 2 + 2] = [1, 1]
        out.append(Example(ids, mask))
    return out


def hp_for(name: str, **changes):
    """tiny's hyper-parameters for `name`, without its early stop unless a test sets one."""
    return replace(load_hparams("tiny", name), **{"stop_forget_nll": None, **changes})


# --- by-hand arithmetic (plain Python, independent of algorithms.losses) ---------------------

def target_nlls(probs, ids):
    return [-math.log(probs[a][b]) for a, b in zip(ids, ids[1:])]


def mean(values):
    values = list(values)
    return sum(values) / len(values)


def log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def kl_rows(p_ref, p_cur):
    return sum(r * math.log(r / c) for r, c in zip(p_ref, p_cur))


def kl_by_hand(examples):
    return mean(kl_rows(Q[t], P[t]) for e in examples for t in e.input_ids)


def forget_nll_by_hand():
    return mean(x for e in FORGET for x in target_nlls(P, e.input_ids))


def retain_nll_by_hand():
    return mean(x for e in RETAIN for x in target_nlls(P, e.input_ids))


def run_loss(name, **constants):
    """The loss of `name` on FORGET and RETAIN under P, the reference Q."""
    return get(name).loss(collate(FORGET, PAD), collate(RETAIN, PAD), Bigram(P), Bigram(Q),
                          **constants)


# --- losses against hand-computed values -----------------------------------------------------

def test_ga_is_minus_mean_forget_nll():
    total, logged = run_loss("ga", gamma=1.0)
    expected = (math.log(4) + math.log(5) + math.log(1.25) + math.log(5)) / 4
    assert forget_nll_by_hand() == pytest.approx(expected)
    assert total.item() == pytest.approx(-expected, rel=1e-6)
    assert logged == {"forget": pytest.approx(expected, rel=1e-6), "retain": None}


def test_gd_adds_alpha_times_retain_nll():
    total, logged = run_loss("gd", gamma=2.0, alpha=0.5)
    expected = -2.0 * forget_nll_by_hand() + 0.5 * retain_nll_by_hand()
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert logged["retain"] == pytest.approx(retain_nll_by_hand(), rel=1e-6)


def test_kl_adds_alpha_times_kl_reference_current_on_real_retain_positions():
    total, logged = run_loss("kl", gamma=1.0, alpha=3.0)
    assert logged["kl"] == pytest.approx(kl_by_hand(RETAIN), rel=1e-5)
    expected = -forget_nll_by_hand() + 3.0 * kl_by_hand(RETAIN)
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_kl_far_is_ga_kl_with_the_kl_weighted_ten_times_by_default():
    total, logged = run_loss("kl_far")
    assert get("kl_far").constants == {"gamma": 1.0, "alpha": 10.0}
    assert logged["kl"] == pytest.approx(kl_by_hand(RETAIN), rel=1e-5)
    expected = -forget_nll_by_hand() + 10.0 * kl_by_hand(RETAIN)
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_npo_against_hand_computed_sequence_log_ratios():
    total, logged = run_loss("npo", gamma=1.0, alpha=0.5, beta=0.1)
    ratios = [sum(target_nlls(Q, e.input_ids)) - sum(target_nlls(P, e.input_ids)) for e in FORGET]
    npo = -(2 / 0.1) * mean(log_sigmoid(-0.1 * d) for d in ratios)
    assert logged["npo"] == pytest.approx(npo, rel=1e-5)
    assert total.item() == pytest.approx(npo + 0.5 * retain_nll_by_hand(), rel=1e-5)


def test_simnpo_against_hand_computed_length_normalized_nll():
    total, logged = run_loss("simnpo", gamma=0.125, alpha=0.5, beta=4.5, delta=0.3)
    per_token = [mean(target_nlls(P, e.input_ids)) for e in FORGET]
    simnpo = -(2 / 4.5) * mean(log_sigmoid(4.5 * (m - 0.3)) for m in per_token)
    assert logged["simnpo"] == pytest.approx(simnpo, rel=1e-5)
    assert total.item() == pytest.approx(0.125 * simnpo + 0.5 * retain_nll_by_hand(), rel=1e-5)


def test_selective_ascends_on_secret_targets_descends_on_context():
    total, logged = run_loss("selective", gamma=1.0, alpha=2.0, context_weight=0.5)
    secret = mean([math.log(5), math.log(1.25), math.log(5)])  # 2|1, 2|2 of A; 0|1 of B
    context = math.log(4)  # 1|0 of A
    assert logged["forget"] == pytest.approx(secret, rel=1e-6)
    assert logged["context"] == pytest.approx(context, rel=1e-6)
    expected = -secret + 0.5 * context + 2.0 * kl_by_hand(RETAIN)
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_selective_refuses_a_batch_without_secret_tokens():
    bf = collate([Example([0, 1, 2], [0, 0, 0])], PAD)
    with pytest.raises(ValueError, match="secret"):
        get("selective").loss(bf, collate(RETAIN, PAD), Bigram(P), Bigram(Q))


# --- padding changes nothing -----------------------------------------------------------------

@pytest.mark.parametrize("name", LOSS_ALGORITHMS)
@pytest.mark.parametrize("model_kind", ["bigram", "llama"])
def test_extra_padding_changes_no_loss(name, model_kind):
    if model_kind == "bigram":
        model, reference, forget, retain = Bigram(P), Bigram(Q), FORGET, RETAIN
    else:
        model, reference = tiny_llama(0), tiny_llama(1)
        forget, retain = random_examples(3, 0, secret=True), random_examples(3, 1, secret=False)
    results = []  # each loss with its defaults: alpha 1, the retain term computed
    for extra in (0, 5):
        bf = collate(forget, PAD, pad_to=max(len(e.input_ids) for e in forget) + extra)
        br = collate(retain, PAD, pad_to=max(len(e.input_ids) for e in retain) + extra)
        total, logged = get(name).loss(bf, br, model, reference)
        results.append((total.item(), logged))
    (t0, l0), (t1, l1) = results
    assert t1 == pytest.approx(t0, rel=1e-5, abs=1e-6)
    assert l1.keys() == l0.keys()
    for key in l0:
        if l0[key] is not None:
            assert l1[key] == pytest.approx(l0[key], rel=1e-5, abs=1e-6), key


def test_kl_ignores_padding_even_where_the_models_differ_on_pad_positions():
    # Pad token 0's rows differ most between P and Q: averaging over padding would show.
    short = collate(RETAIN, PAD)
    padded = collate(RETAIN, PAD, pad_to=10)
    values = [losses.kl_reference_current(Bigram(P)(b["input_ids"]).logits,
                                          Bigram(Q)(b["input_ids"]).logits, b["attention_mask"])
              for b in (short, padded)]
    assert values[0].item() == pytest.approx(kl_by_hand(RETAIN), rel=1e-5)
    assert values[1].item() == pytest.approx(values[0].item(), rel=1e-6)


# --- fixed points and directions -------------------------------------------------------------

def test_kl_is_zero_when_model_is_reference():
    model = tiny_llama(0)
    _, logged = get("kl").loss(collate(random_examples(2, 0, True), PAD),
                               collate(random_examples(3, 1, False), PAD),
                               model, copy.deepcopy(model), alpha=1.0)
    assert logged["kl"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_npo_at_the_reference_is_two_over_beta_log_two(beta):
    model = tiny_llama(0)
    total, logged = get("npo").loss(collate(random_examples(3, 0, True), PAD), None, model,
                                    copy.deepcopy(model), beta=beta, alpha=0.0, gamma=1.0)
    assert logged["npo"] == pytest.approx(2 / beta * math.log(2), rel=1e-5)
    assert total.item() == pytest.approx(2 / beta * math.log(2), rel=1e-5)
    assert logged["retain"] is None  # alpha 0: pure NPO, no retain term computed


def sgd_step(model, total, lr):
    model.zero_grad()
    total.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad


@pytest.mark.parametrize("name", LOSS_ALGORITHMS)
def test_a_step_on_the_forget_term_raises_the_forget_nll(name):
    """Pure forget terms (alpha 0): one gradient step must make the forget tokens less likely.
    A sign error (e.g. SimNPO's log sigmoid argument) fails here."""
    model, reference = Bigram(P), Bigram(P)
    # SimNPO's gradient fades as sigmoid(-beta * (m - delta)): with delta 0 and beta 4.5 it is
    # 0.5% of its size here; a margin near the forget NLL (about 1.2) keeps the step measurable.
    constants = {"alpha": 0.0} if "alpha" in get(name).constants else {}
    if name == "simnpo":
        constants["delta"] = 1.2
    bf = collate(FORGET, PAD)
    total, before = get(name).loss(bf, None, model, reference, **constants)
    sgd_step(model, total, lr=0.5)
    _, after = get(name).loss(bf, None, model, reference, **constants)
    assert after["forget"] > before["forget"] + 1e-4


def test_a_step_on_the_gd_retain_term_lowers_the_retain_nll():
    model, constants = Bigram(P), {"gamma": 0.0, "alpha": 1.0}
    bf, br = collate(FORGET, PAD), collate(RETAIN, PAD)
    total, before = get("gd").loss(bf, br, model, None, **constants)
    sgd_step(model, total, lr=0.5)
    _, after = get("gd").loss(bf, br, model, None, **constants)
    assert after["retain"] < before["retain"] - 1e-4


def test_a_step_on_the_kl_term_moves_toward_the_reference():
    model, reference, constants = Bigram(P), Bigram(Q), {"gamma": 0.0, "alpha": 1.0}
    bf, br = collate(FORGET, PAD), collate(RETAIN, PAD)
    total, before = get("kl").loss(bf, br, model, reference, **constants)
    sgd_step(model, total, lr=0.5)
    _, after = get("kl").loss(bf, br, model, reference, **constants)
    assert after["kl"] < before["kl"] - 1e-4


# --- encoding ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bpe():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = ['password = "hunter42"\n', 'user alice logged in\n', "def connect():\n    pass\n",
             'email = "alice@example.com"\n', "x = 1\ny = 2\n"] * 20
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2 style
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>")


def split_by_mask(tokenizer, example):
    marked = [i for i, m in enumerate(example.secret_mask) if m]
    assert marked == list(range(marked[0], marked[-1] + 1)), "secret tokens are contiguous"
    ids = example.input_ids
    return (tokenizer.decode(ids[: marked[0]]), tokenizer.decode(ids[marked[0] : marked[-1] + 1]),
            tokenizer.decode(ids[marked[-1] + 1 :]))


def test_encode_forget_marks_exactly_the_secret_tokens(bpe):
    text = 'def connect():\n    password = "hunter42"\n    return password\n'
    start = text.index("hunter42")
    example = encode_forget(text, (start, start + 8), bpe, max_len=100)
    before, secret, after = split_by_mask(bpe, example)
    assert secret == "hunter42"
    assert before + secret + after == text
    assert example.input_ids == bpe(text, add_special_tokens=False)["input_ids"]


def test_encode_forget_marks_a_token_that_straddles_the_secrets_edge(bpe):
    text = "user alice logged in\n"
    start = text.index("alice")
    _, secret, _ = split_by_mask(bpe, encode_forget(text, (start, start + 5), bpe, max_len=100))
    assert secret.strip() == "alice" and secret.startswith(" ")  # GPT-2 BPE: " alice"


def test_encode_forget_truncates_around_the_secret(bpe):
    text = "x = 1\n" * 30 + 'password = "hunter42"\n' + "y = 2\n" * 30
    start = text.index("hunter42")
    example = encode_forget(text, (start, start + 8), bpe, max_len=12)
    assert len(example.input_ids) == 12
    before, secret, after = split_by_mask(bpe, example)
    assert secret == "hunter42" and after == ""  # the window keeps the prefix, not the suffix
    assert before.endswith('password = "')
    with pytest.raises(ValueError, match="max_len"):
        encode_forget(text, (start, start + 8), bpe, max_len=1)
    with pytest.raises(ValueError, match="span"):
        encode_forget(text, (5, 5), bpe, max_len=12)


def test_encode_document_ends_a_whole_text_and_only_a_whole_text(bpe):
    text = "x = 1\ny = 2\n"
    ids = bpe(text, add_special_tokens=False)["input_ids"]
    whole = encode_document(text, bpe, max_len=len(ids) + 1)
    assert whole.input_ids == ids + [bpe.eos_token_id] and whole.secret_mask == [0] * len(ids + [0])
    cut = encode_document(text, bpe, max_len=len(ids))  # no room for the end: the text is cut
    assert cut.input_ids == ids
    assert encode_document(text * 10, bpe, max_len=7).input_ids == ids[:7]


def test_collate():
    batch = collate([Example([0, 5, 0], [0, 1, 0]), Example([4, 4], [0, 0])], pad_id=0, pad_to=5)
    assert batch["input_ids"].tolist() == [[0, 5, 0, 0, 0], [4, 4, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    assert batch["labels"].tolist() == [[0, 5, 0, -100, -100], [4, 4, -100, -100, -100]]
    assert batch["secret_mask"].tolist() == [[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]


def test_pack_lays_documents_end_to_end_longest_first():
    docs = [Example([3, 4], [0, 0]), Example([5, 6, 7, 8], [0, 0, 0, 0]),
            Example([9, 10, 11], [0, 0, 0])]
    batch = pack(docs, pad_id=0, row_len=6)
    assert batch.keys() == {"input_ids", "position_ids", "labels"}
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 3, 4], [9, 10, 11, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1], [0, 1, 2, 0, 1, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 7, 8, -100, 4], [-100, 10, 11, -100, -100, -100]]
    with pytest.raises(ValueError, match="^an example of 4 tokens does not fit a row of 3$"):
        pack(docs, pad_id=0, row_len=3)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_packed_documents_give_the_padded_loss_and_gradients(attention):
    """What planting relies on: packed, each document is seen as it is alone."""
    docs = random_examples(6, 2, secret=False)
    model = tiny_llama(0)
    model.config._attn_implementation = attention
    padded = collate(docs, PAD)
    packed = pack(docs, PAD, row_len=24)
    assert packed["input_ids"].shape[0] < len(docs)  # several documents share a row

    def loss_and_gradient(batch):
        model.zero_grad()
        batch = {k: v for k, v in batch.items() if k != "secret_mask"}
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    (loss, gradient), (packed_loss, packed_gradient) = map(loss_and_gradient, (padded, packed))
    assert packed_loss == pytest.approx(loss, rel=1e-5)
    assert torch.allclose(packed_gradient, gradient, rtol=1e-4, atol=1e-6)


# --- the loop ------------------------------------------------------------------------------------

def run_loop(name="kl", tmp_path=None, **changes):
    model = tiny_llama(0)
    reference = copy.deepcopy(model)
    hp = hp_for(name, epochs=2, batch_size=2, lr=1e-2, **changes)
    log = tmp_path / f"{name}.json" if tmp_path else None
    result = unlearn(model, reference, random_examples(3, 0, True), random_examples(5, 1, False),
                     get(name), hp, pad_id=PAD, log_path=log)
    return result, model, reference, log


def test_loop_trains_logs_and_is_deterministic(tmp_path):
    result, model, reference, log = run_loop(tmp_path=tmp_path)
    assert result["steps"] == 4 and result["stop_reason"] == "epochs"  # 2 epochs x 2 batches
    assert not result["stopped_early"]
    assert [r["step"] for r in result["records"]] == [1, 2, 3, 4]
    assert {"step", "forget", "retain", "loss", "kl"} <= result["records"][0].keys()
    assert json.loads(log.read_text()) == result
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away
    assert result["records"][-1]["forget"] > result["records"][0]["forget"]
    changed = any(not torch.equal(a, b) for a, b in zip(model.parameters(),
                                                        tiny_llama(0).parameters()))
    unchanged = all(torch.equal(a, b) for a, b in zip(reference.parameters(),
                                                      tiny_llama(0).parameters()))
    assert changed and unchanged
    again, _, _, _ = run_loop()
    assert [r["loss"] for r in again["records"]] == [r["loss"] for r in result["records"]]
    other_seed, _, _, _ = run_loop(seed=1)
    assert [r["loss"] for r in other_seed["records"]] != [r["loss"] for r in result["records"]]


def test_loop_respects_max_steps_and_early_stop():
    capped, _, _, _ = run_loop("gd", max_steps=3)
    assert capped["steps"] == 3 and capped["stop_reason"] == "max_steps"
    assert not capped["stopped_early"]
    stopped, _, _, _ = run_loop("ga", stop_forget_nll=0.0)
    assert stopped["steps"] == 1 and stopped["stopped_early"]
    assert stopped["stop_reason"] == "stop_forget_nll"


def test_loop_shuffles_each_epoch_and_cycles_retain_batches():
    seen = []

    def spy(batch_forget, batch_retain, model, reference):
        seen.append((batch_forget["input_ids"][:, 0].tolist(),
                     batch_retain["input_ids"][:, 0].tolist()))
        total = losses.logits_of(model, batch_forget).sum() * 0.0
        return total, {"forget": 0.0, "retain": 0.0}

    algorithm = algorithms.Algorithm("spy", "test", spy, needs_retain=True)
    forget = [Example([10 + i, 3], [0, 0]) for i in range(4)]
    retain = [Example([30 + i, 3], [0, 0]) for i in range(2)]
    hp = replace(hp_for("gd", epochs=3, batch_size=1), constants={})
    unlearn(tiny_llama(0), None, forget, retain, algorithm, hp, pad_id=PAD)
    assert len(seen) == 12
    epochs = [seen[i : i + 4] for i in (0, 4, 8)]
    for epoch in epochs:
        assert sorted(f[0] for f, _ in epoch) == [10, 11, 12, 13]  # each forget example once
        retain_ids = [r[0] for _, r in epoch]
        assert retain_ids[:2] == retain_ids[2:] and sorted(retain_ids[:2]) == [30, 31]  # cycled
    assert len({tuple(f[0] for f, _ in epoch) for epoch in epochs}) > 1  # reshuffled per epoch


def test_loop_trains_only_lora_parameters_of_a_peft_model():
    from peft import LoraConfig, get_peft_model

    base = tiny_llama(0)
    reference = copy.deepcopy(base)
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                            lora_dropout=0.0))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = unlearn(model, reference, random_examples(2, 0, True), random_examples(2, 1, False),
                     get("kl"), hp_for("kl", epochs=1, batch_size=1, lr=1e-2), pad_id=PAD)
    assert result["steps"] == 2
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)


def test_loop_refuses_what_it_cannot_train():
    model = tiny_llama(0)
    forget, retain = random_examples(2, 0, True), random_examples(2, 1, False)
    for name in ("none", "retrain"):
        with pytest.raises(ValueError, match="no loss"):
            unlearn(model, None, forget, retain, get(name), hp_for("ga"), pad_id=PAD)
    with pytest.raises(ValueError, match="reference"):
        unlearn(model, None, forget, retain, get("kl"), hp_for("kl"), pad_id=PAD)
    with pytest.raises(ValueError, match="separate copy"):
        unlearn(model, model, forget, retain, get("npo"), hp_for("npo"), pad_id=PAD)
    with pytest.raises(ValueError, match="retain"):
        unlearn(model, None, forget, [], get("gd"), hp_for("gd"), pad_id=PAD)


# --- registry and hyper-parameters ---------------------------------------------------------------

def test_registry_lists_the_nine_algorithms_of_the_command_line():
    from leakbench.options import ALGORITHMS

    names = ("none", "ga", "gd", "kl", "npo", "simnpo", "selective", "kl_far", "retrain")
    assert tuple(registry()) == BUILT_IN == names == ALGORITHMS
    for algorithm in registry().values():
        assert (algorithm.loss is not None) == (algorithm.kind == "loss")
    assert get("none").kind == "identity" and get("retrain").kind == "retrain"
    with pytest.raises(KeyError) as error:
        get("gradascent")
    assert all(name in str(error.value) for name in names)


def test_reading_the_registry_imports_no_torch():
    """Every pytest worker reads it (options, --help): a loss imports torch when it runs."""
    code = ("import sys, algorithms; names = list(algorithms.registry()); "
            "algorithms.load_hparams('tiny', 'simnpo'); print(names, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == f"{list(BUILT_IN)} False"


@pytest.mark.parametrize("name", LOSS_ALGORITHMS)
def test_each_loss_module_states_its_loss_and_source(name):
    module = __import__(f"algorithms.{name}", fromlist=["loss"])
    assert re.search(r"^ +L +=", module.__doc__, re.M) and "arXiv" in module.__doc__
    assert module.ALGORITHM is get(name) and module.ALGORITHM.loss is module.loss


def test_the_readme_algo_row_lists_the_registry():
    row = next(line for line in (ROOT / "README.md").read_text().splitlines()
               if line.startswith("| `--algo` |"))
    listed = re.findall(r"`([a-z_]+)`", row.split("|")[2])
    assert listed == [*BUILT_IN, "all"]


def test_a_declaration_is_checked_when_it_is_made():
    def loss(batch_forget, batch_retain, model, reference, *, beta=0.1):
        pass

    assert algorithms.Algorithm("mine", "one line", loss).constants == {"beta": 0.1}

    def with_hp(batch_forget, batch_retain, model, reference, hp):
        pass

    def without_default(batch_forget, batch_retain, model, reference, *, beta):
        pass

    def training_setting(batch_forget, batch_retain, model, reference, *, lr=1e-3):
        pass

    cases = [(("Mine", "one line", loss), {}, "lowercase"),
             (("all", "one line", loss), {}, "lowercase"),
             (("mine", "two\nlines", loss), {}, "one line"),
             (("mine", "one line", None), {}, "needs loss"),
             (("mine", "one line", loss), {"kind": "identity"}, "has no loss"),
             (("mine", "one line", with_hp), {}, "must take"),
             (("mine", "one line", without_default), {}, "'beta' needs a number"),
             (("mine", "one line", training_setting), {}, "'lr' is a training setting")]
    for args, keywords, message in cases:
        with pytest.raises(ValueError, match=message):
            algorithms.Algorithm(*args, **keywords)


# Every family's values for every algorithm before the registry (issue #21), as a variant's key
# holds them: the keys of the variants cached since must not change.
BEFORE_REGISTRY = {
    "tiny": {"mode": "full", "lr": 3e-5, "epochs": 3, "batch_size": 8, "lora_rank": 8,
             "lora_alpha": 16, "max_steps": None, "stop_forget_nll": 1.0},
    "micro": {"mode": "lora", "lr": 3e-4, "epochs": 2, "batch_size": 4, "lora_rank": 4,
              "lora_alpha": 8, "max_steps": 20, "stop_forget_nll": None},
    "default": {"mode": "lora", "lr": 1e-4, "epochs": 3, "batch_size": 4, "lora_rank": 16,
                "lora_alpha": 32, "max_steps": None, "stop_forget_nll": None},
}
SHARED_BEFORE = {"seed": 0, "grad_clip": 1.0, "gamma": 1.0, "alpha": 1.0, "beta": 0.1,
                 "delta": 0.0, "context_weight": 1.0}
DIFFERING_BEFORE = {"gd": {"tiny": {"lr": 5e-5}},
                    "simnpo": {family: {"beta": 4.5, "gamma": 0.125} for family in BEFORE_REGISTRY}}


@pytest.mark.parametrize("family", BEFORE_REGISTRY)
@pytest.mark.parametrize("name", [name for name in BUILT_IN if name != "kl_far"])  # the later one
def test_resolved_hparams_and_variant_keys_are_those_before_the_registry(family, name):
    """...except tiny's tuned tables (leakbench.tune), which change its keys on purpose."""
    tuned = hparams_file.written(family, name) or {}
    expected = {**SHARED_BEFORE, **BEFORE_REGISTRY[family],
                **({} if tuned else DIFFERING_BEFORE.get(name, {}).get(family, {})), **tuned}
    resolved = key_hparams(load_hparams(family, name))
    # As JSON, as the key hashes it: 1.0 and 1 would be different keys.
    assert json.dumps(resolved, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_load_hparams_for_each_family():
    for family in ("tiny", "micro", "default"):
        for name in registry():
            assert load_hparams(family, name).lr > 0
    assert load_hparams("tiny", "ga").mode == "full"
    assert load_hparams("default", "ga").mode == "lora"
    assert load_hparams("tiny", "npo").constants == {"gamma": 1.0, "alpha": 1.0, "beta": 0.1}
    assert load_hparams("micro", "simnpo").constants == get("simnpo").constants == {
        "gamma": 0.125, "alpha": 1.0, "beta": 4.5, "delta": 0.0}
    assert load_hparams("tiny", "ga").grad_clip == 1.0
    assert load_hparams("tiny", "ga").stop_forget_nll == 1.0
    assert load_hparams("tiny", "gd").lr == 5e-5 and load_hparams("tiny", "kl").lr == 3e-5
    far = load_hparams("tiny", "kl_far")  # a late stop decides, at a higher rate
    assert (far.lr, far.stop_forget_nll, far.epochs, far.constants) == (
        1e-4, 6.0, 10, {"gamma": 1.0, "alpha": 10.0})
    assert load_hparams("default", "kl_far").stop_forget_nll == 6.0
    assert load_hparams("micro", "ga").stop_forget_nll is None  # omitted: off
    assert load_hparams("tiny", "none").constants == {}


def test_load_hparams_unknown_family_is_an_error_unless_fallback_is_asked():
    with pytest.raises(KeyError) as error:
        load_hparams("gpt5", "ga")
    message = str(error.value)
    assert str(HPARAMS_PATH) in message and all(f in message for f in ("tiny", "micro", "default"))
    assert "\n" not in message
    assert load_hparams("gpt5", "ga", fallback=True) == load_hparams("default", "ga")
    with pytest.raises(KeyError, match="unknown algorithm"):
        load_hparams("tiny", "graddiff")


def test_an_algorithm_table_overrides_training_settings_and_its_own_constants(tmp_path):
    path = tmp_path / "hparams.toml"
    path.write_text(HPARAMS_PATH.read_text() + "\n[micro.npo]\nbeta = 0.5\nepochs = 1\n")
    npo = load_hparams("micro", "npo", path=path)
    assert npo.constants["beta"] == 0.5 and npo.epochs == 1
    assert load_hparams("micro", "kl", path=path) == load_hparams("micro", "kl")


def test_load_hparams_rejects_typos_and_missing_keys(tmp_path):
    good = HPARAMS_PATH.read_text()
    training = "batch_size, epochs, grad_clip, lora_alpha, lora_rank, lr, max_steps, mode, seed, " \
               "stop_forget_nll"
    cases = {  # the text, then what its one-line error says, loading gd
        "learning_rate": (good.replace("[tiny]\n", "[tiny]\nlearning_rate = 1.0\n", 1),
                          f"[tiny]: unknown keys ['learning_rate']; valid: {training}"),
        "gradiff": (good.replace("[tiny.gd]", "[tiny.gradiff]", 1),
                    "[tiny.gradiff] is for an unknown algorithm; valid: none, ga, gd"),
        # A method constant belongs to an algorithm's table, and only to its own algorithm's.
        "family constant": (good.replace("[tiny]\n", "[tiny]\nbeta = 0.2\n", 1),
                            f"[tiny]: unknown keys ['beta']; valid: {training}"),
        "other constant": (good.replace("[tiny.gd]\n", "[tiny.gd]\nbeta = 0.2\n", 1),
                           f"[tiny.gd]: unknown keys ['beta']; valid: {training}, gamma, alpha"),
        "missing": (good.replace("[tiny]\nmode = \"full\"\n", "[tiny]\n", 1),
                    "[tiny] for gd: missing keys ['mode']"),
        "mode": (good.replace('[tiny]\nmode = "full"', '[tiny]\nmode = "qlora"', 1),
                 "mode must be 'lora' or 'full', not 'qlora'"),
        "constant type": (good.replace("[tiny.gd]\n", '[tiny.gd]\ngamma = "1"\n', 1),
                          "[tiny.gd]: gamma = '1' is not of type float"),
        "constant range": (good.replace("[tiny.gd]\n", "[tiny.gd]\ngamma = -1\n", 1),
                           "gamma must be a number >= 0"),
    }
    for name, (text, expected) in cases.items():
        assert text != good, name
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        with pytest.raises(ValueError) as error:
            load_hparams("tiny", "gd", path=path)
        message = str(error.value)
        assert expected in message and str(path) in message and "\n" not in message, name
