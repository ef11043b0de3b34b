"""The privacy metrics in the benchmark: the token request kind through JSON and the store, the
engine's LoRA restriction for prompt log-probs, the plan and per-sample scores on hand-made
answers, the aggregation on hand-made numbers, Min-K%++ through transformers (LoRA included),
--metrics, and one run of the memorization tests on the `micro` model."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from leakbench import serving
from leakbench.cases import CaseFileError, Decoys
from leakbench.completions import Store, request_key
from leakbench.membership import min_k_plus_plus_score, next_token_stats, privleak
from leakbench.memorization import calibrated_threshold, forgotten_share
from leakbench.options import Gate, OptionError, parse_metrics
from leakbench.plant import plant_config
from leakbench.privacy_metrics import (
    SECRET_TOKENS,
    Plan,
    PlannedSample,
    aggregate,
    minkpp_scores,
)
from leakbench.probes import PrivacyData
from leakbench.run_options import parse_options
from leakbench.schema import Request, Sampling, TokenRequest, request_from_dict, request_to_dict
from leakbench.serving import EngineJob
from leakbench.unlearn import Variant
from leakbench.value_scan import ValueScan, published_values
from reports.records import Collected, parse_record
from reports.render import NO_PRIVLEAK, render
from reports.summary import summarize

ROOT = Path(__file__).resolve().parents[1]

# --- the token request kind ----------------------------------------------------------------


def test_a_job_with_both_request_kinds_round_trips_through_json():
    requests = [Request("p", Sampling(stop=("\n",))),
                TokenRequest((5, 6, 7), Sampling(max_tokens=1), prompt_logprobs=True),
                TokenRequest((5, 6), Sampling(max_tokens=3))]
    job = EngineJob(weights={"/m": ["none", "kl"]}, adapters={"none": None, "kl": "/a"},
                    requests={"none": requests, "kl": requests[1:]})
    again = EngineJob.from_json(job.to_json())
    assert again == job
    assert [type(r) for r in again.requests["none"]] == [Request, TokenRequest, TokenRequest]


def test_token_requests_have_keys_of_their_own_and_text_requests_keep_theirs():
    text = Request("a", Sampling(max_tokens=8))
    assert request_key(text) == "21bce326d2dfa38ab281fb29"  # the key completions were cached under
    plain = TokenRequest((1, 2), Sampling(max_tokens=1))
    scored = TokenRequest((1, 2), Sampling(max_tokens=1), prompt_logprobs=True)
    assert len({request_key(text), request_key(plain), request_key(scored)}) == 3
    cut = Request("a", Sampling(max_tokens=8, temperature=0.8, top_k=40))
    assert request_key(cut) != request_key(Request("a", Sampling(max_tokens=8, temperature=0.8)))
    assert request_from_dict(json.loads(json.dumps(request_to_dict(cut)))) == cut


def test_token_answers_are_stored_and_loaded(tmp_path):
    store = Store(tmp_path / "v")
    scored = TokenRequest((1, 2, 3), Sampling(max_tokens=1), prompt_logprobs=True)
    answer = {"token_ids": [[4]], "prompt_logprobs": [[-0.5, 2], [-1.25, 9]]}
    store.add([scored], [answer])
    assert store.missing([scored]) == []
    assert store.load() == {request_key(scored): answer}


def test_token_requests_take_no_stop_strings_and_no_empty_prompt():
    with pytest.raises(ValueError, match="stop"):
        TokenRequest((1,), Sampling(stop=("\n",)))
    with pytest.raises(ValueError, match="at least one"):
        TokenRequest((), Sampling())


def test_an_engine_output_becomes_a_token_answer():
    def lp(logprob, rank):
        return SimpleNamespace(logprob=logprob, rank=rank)

    # vLLM's prompt_logprobs: None for the first token, then {token id: Logprob} holding the
    # actual token and the top-1 (one entry when the actual token is the top-1).
    output = SimpleNamespace(
        prompt_logprobs=[None, {7: lp(-0.2, 1)}, {8: lp(-3.0, 4), 2: lp(-0.1, 1)}],
        outputs=[SimpleNamespace(token_ids=(4, 5), text="")])
    scored = TokenRequest((1, 7, 8), Sampling(max_tokens=2), prompt_logprobs=True)
    assert serving._answer(scored, output) == {"token_ids": [[4, 5]],
                                               "prompt_logprobs": [[-0.2, 7], [-3.0, 2]]}
    plain = TokenRequest((1, 7, 8), Sampling(max_tokens=2))
    assert serving._answer(plain, output) == {"token_ids": [[4, 5]], "prompt_logprobs": None}


def _adapter(directory: Path, targets) -> str:
    directory.mkdir()
    (directory / "adapter_config.json").write_text(json.dumps({"target_modules": targets}))
    return str(directory)


def test_prompt_logprobs_restrict_lora_to_the_adapters_modules(tmp_path):
    kl = _adapter(tmp_path / "kl", ["model.layers.0.self_attn.q_proj",
                                    "model.layers.1.mlp.up_proj"])
    ga = _adapter(tmp_path / "ga", ["model.layers.0.mlp.down_proj"])
    scored = TokenRequest((1, 2), Sampling(max_tokens=1), prompt_logprobs=True)
    job = EngineJob(weights={"/m": ["none", "kl", "ga"]},
                    adapters={"none": None, "kl": kl, "ga": ga},
                    requests={"none": [scored], "kl": [], "ga": []})
    assert serving.engine_kwargs(job)["lora_target_modules"] == ["down_proj", "q_proj", "up_proj"]
    text_only = EngineJob(weights=job.weights, adapters=job.adapters,
                          requests={"none": [Request("p", Sampling())]})
    assert "lora_target_modules" not in serving.engine_kwargs(text_only)
    overridden = EngineJob(**{**vars(job), "engine_args": {"lora_target_modules": ["o_proj"]}})
    assert serving.engine_kwargs(overridden)["lora_target_modules"] == ["o_proj"]


def test_an_adapter_on_lm_head_or_a_pattern_cannot_give_prompt_logprobs(tmp_path):
    with pytest.raises(ValueError, match="lm_head"):
        serving.lora_target_modules([_adapter(tmp_path / "a", ["q_proj", "lm_head"])])
    with pytest.raises(ValueError, match="pattern"):
        serving.lora_target_modules([_adapter(tmp_path / "b", ".*proj")])


# --- plan and per-sample scores ------------------------------------------------------------

# Token ids 1..9. Forget: prefix (1, 2), secret (3, 4, 5). Holdout: prefix (1,), secret (6, 7).
FORGET = PlannedSample("forget", "ab cde", (1, 2, 3, 4, 5), (2, 5), (3, 6))
HOLDOUT = PlannedSample("holdout", "a fg", (1, 6, 7), (1, 3), (2, 4))


def _answers(plan_samples, logprobs, continuations) -> dict:
    answers = {}
    for sample, pairs, conts in zip(plan_samples, logprobs, continuations):
        answers[request_key(sample.text_request())] = {"token_ids": [[0]],
                                                        "prompt_logprobs": pairs}
        for request, cont in zip(sample.el_requests(), conts):
            answers[request_key(request)] = {"token_ids": [cont], "prompt_logprobs": None}
    return answers


def test_el_requests_prompt_with_the_secret_so_far_for_what_is_left():
    requests = FORGET.el_requests()
    assert [r.prompt_ids for r in requests] == [(1, 2), (1, 2, 3), (1, 2, 3, 4)]
    assert [r.sampling.max_tokens for r in requests] == [3, 2, 1]
    assert all(r.sampling.temperature == 0 and not r.prompt_logprobs for r in requests)
    assert FORGET.text_request().prompt_logprobs


def test_scores_read_ma_from_the_top1_tokens_and_el_from_the_continuations():
    plan = Plan(("ma", "el", "mia"), ("kl",), (FORGET, HOLDOUT))
    # entry t-1 is [log-prob of token t, top-1 at t]; the secret of FORGET is at t = 2, 3, 4
    forget_lps = [[-1.0, 9], [-0.5, 3], [-0.25, 8], [-0.1, 5]]  # top-1 right at t = 2 and 4
    holdout_lps = [[-2.0, 6], [-3.0, 1]]  # right at t = 1 only
    answers = _answers((FORGET, HOLDOUT), (forget_lps, holdout_lps),
                       ([[3, 4, 5], [4, 5], [5]], [[6, 7], [1]]))
    scores = plan.scores(answers, minkpp=[0.7, 0.2])
    assert scores["forget"]["ma"] == [pytest.approx(2 / 3)]
    assert scores["holdout"]["ma"] == [0.5]
    assert scores["forget"]["es"] == [pytest.approx(1 / 3)]  # only the last token from its past
    assert scores["holdout"]["es"] == [0.0]  # the last token is missed
    assert scores["forget"]["el3"] == [1.0]  # the prefix alone reproduces the whole secret
    assert scores["holdout"]["el3"] == [1.0]  # L = 2 < 3: 1 when split 0 gives the whole secret
    assert scores["forget"]["loss"] == [pytest.approx(1.85 / 4)]
    assert scores["forget"]["min_k"] == [pytest.approx(-1.0)]  # floor(0.4 * 4) = 1 lowest
    assert scores["forget"]["min_k_plus_plus"] == [0.7]
    assert scores["holdout"]["min_k_plus_plus"] == [0.2]
    assert set(scores["forget"]) == {"ma", "es", "el3", "el5", "el10", "loss", "zlib", "min_k",
                                     "min_k_plus_plus"}


def test_scores_rank_each_secret_among_its_decoys():
    plan = Plan(("exposure",), ("kl",), (FORGET, HOLDOUT))
    # log-perplexities: the secret first, then its decoys
    scores = plan.scores({}, None, [[1.0, 2.0, 3.0, 4.0], [2.5, 2.0, 3.0, 4.0]])
    assert scores["forget"]["exposure"] == [pytest.approx(2.0)]  # rank 1 of 4: log2(4)
    assert scores["holdout"]["exposure"] == [pytest.approx(1.0)]  # rank 2 of 4
    assert scores["forget"]["exposure_top"] == [1.0] and scores["holdout"]["exposure_top"] == [0.0]
    assert scores["forget"]["exposure_extrapolated"][0] > scores["holdout"][
        "exposure_extrapolated"][0]


def test_a_plan_asks_only_what_its_groups_need():
    samples = (FORGET, HOLDOUT)
    assert len(Plan(("el",), ("kl",), samples).requests()) == 3 + 2
    assert len(Plan(("ma",), ("kl",), samples).requests()) == 2
    assert len(Plan(("ma", "el"), ("kl",), samples).requests()) == 2 + 3 + 2
    needed = Plan(("privleak",), ("kl", "retrain"), samples).add_requests(
        {"kl": [Request("p", Sampling())], "none": [Request("q", Sampling())]})
    assert [len(needed[name]) for name in ("kl", "retrain", "none")] == [3, 2, 1]


@pytest.mark.training
def test_a_plan_adds_retrain_for_privleak_and_nothing_without_tests(micro_model):
    variants = {name: Variant(name, micro_model, None, name) for name in ("none", "kl", "retrain")}
    data = PrivacyData.load(ROOT / "cases")
    data = PrivacyData(data.forget[:5], data.holdout[:3])
    algorithms = ("none", "kl", "retrain")
    assert Plan.build(("ma",), (), algorithms, variants, data) is None
    assert Plan.build((), ("kl",), algorithms, variants, data) is None
    assert Plan.build(("ma",), ("kl",), algorithms, variants, data).algorithms == ("kl",)
    plan = Plan.build(("privleak",), ("kl",), algorithms, variants, data)
    assert plan.algorithms == ("kl", "retrain")
    assert [s.split for s in plan.samples] == ["forget"] * 5 + ["holdout"] * 3


@pytest.mark.training
def test_a_planned_secret_is_the_tokens_of_the_secret_at_most_32(micro_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_model)
    variants = {"kl": Variant("kl", micro_model, None, "kl")}
    data = PrivacyData.load(ROOT / "cases")
    plan = Plan.build(("ma",), ("kl",), ("kl",), variants, data)
    capped = 0
    for sample, original in zip(plan.samples, data.reported + data.holdout, strict=True):
        start, end = sample.secret
        assert 1 <= start < end <= start + SECRET_TOKENS
        assert sample.ids == tuple(tokenizer(original.text, add_special_tokens=False)["input_ids"])
        secret = tokenizer.decode(sample.secret_ids)
        if end - start < SECRET_TOKENS:
            assert secret.strip() == original.secret
        else:
            capped += 1
            assert original.secret.startswith(secret.strip())
        assert tokenizer.decode(sample.ids[:start]) == original.text[:original.span[0]]
    assert capped > 0  # some secrets of the data are longer than 32 tokens


# --- aggregation ---------------------------------------------------------------------------

def _scores(ma_f, ma_h, min_k_f, min_k_h) -> dict:
    def split(ma, min_k, offset):
        return {"ma": ma, "es": [v / 2 for v in ma],
                **{f"el{n}": [v / n for v in ma] for n in (3, 5, 10)},
                "loss": [-v for v in min_k], "zlib": [offset - v for v in min_k],
                "min_k": min_k, "min_k_plus_plus": [2 * v for v in min_k]}

    return {"forget": split(ma_f, min_k_f, 0), "holdout": split(ma_h, min_k_h, 0)}


def test_aggregate_averages_and_compares_forget_with_holdout():
    # Min-K% (higher = member): forget [-1, -2, -4] vs holdout [-3, -5]: 5 of 6 pairs higher.
    variant = _scores([1.0, 0.5, 0.0], [0.25, 0.75], [-1.0, -2.0, -4.0], [-3.0, -5.0])
    metrics = aggregate(variant, None, ("ma", "el", "mia", "privleak"))
    assert metrics["ma"] == pytest.approx(0.5) and metrics["ma_holdout"] == pytest.approx(0.5)
    assert metrics["el3"] == pytest.approx(0.5 / 3)
    assert metrics["el10_holdout"] == pytest.approx(0.05)
    for name in ("mia_auc", "mia_auc_loss", "mia_auc_zlib", "mia_auc_minkpp"):
        assert metrics[name] == pytest.approx(5 / 6), name  # every score oriented member-high
    assert "privleak" not in metrics  # no retrain variant in the run


def test_forgotten_share_counts_secrets_at_most_the_holdout_95th_percentile():
    holdout = [i / 100 for i in range(100)]  # 0.00 .. 0.99: the 95th percentile is 0.94
    assert calibrated_threshold(holdout) == pytest.approx(0.94)
    assert calibrated_threshold([0.3]) == 0.3 and calibrated_threshold([0.5, 0.1]) == 0.5
    # a mean of 0.45 hides one secret held whole among nine forgotten ones
    assert forgotten_share([1.0] + [0.39] * 9, holdout) == pytest.approx(0.9)
    assert forgotten_share([0.94, 0.95], holdout) == pytest.approx(0.5)  # at most: forgotten
    assert forgotten_share(holdout, holdout) == pytest.approx(0.95)  # a model that never saw them
    with pytest.raises(ValueError, match="holdout"):
        forgotten_share([0.1], [])


def test_aggregate_reports_the_forgotten_share_per_metric():
    variant = _scores([1.0, 0.5, 0.0, 0.1], [0.25, 0.75, 0.0, 0.1], [-1.0] * 4, [-2.0] * 4)
    metrics = aggregate(variant, None, ("ma", "el"))
    assert metrics["forgotten_ma"] == pytest.approx(0.75)  # at most 0.75: all but the 1.0
    assert metrics["forgotten_el10"] == pytest.approx(0.75)  # the same scores over 10


def test_aggregate_reports_exposure_and_how_well_each_score_separates():
    variant = _scores([1.0, 0.5, 0.0], [0.25, 0.75], [-1.0] * 3, [-2.0] * 2)
    for split, bits in (("forget", [6.0, 5.0, 1.0]), ("holdout", [1.0, 2.0])):
        variant[split] |= {"exposure": bits, "exposure_extrapolated": [b + 1 for b in bits],
                           "exposure_top": [float(b == 6.0) for b in bits]}
    metrics = aggregate(variant, None, ("ma", "exposure"))
    assert metrics["exposure"] == pytest.approx(4.0)
    assert metrics["exposure_holdout"] == pytest.approx(1.5)
    assert metrics["exposure_extrapolated"] == pytest.approx(5.0)
    assert metrics["forgotten_exposure"] == pytest.approx(1 / 3)  # at most 2.0: the 1.0 only
    assert metrics["exposure_top_share"] == pytest.approx(1 / 3)
    assert metrics["exposure_auc"] == pytest.approx(4.5 / 6)  # 4 pairs above, 1 tie of 6
    assert metrics["ma_auc"] == pytest.approx(3 / 6)  # 1.0 > both, 0.5 > 0.25, 0.0 > none
    assert "el10_auc" not in metrics  # EL_n not measured


def test_privleak_is_measured_against_the_retrain_variant():
    variant = _scores([1.0], [0.0], [-1.0, -2.0, -4.0], [-3.0, -5.0])  # Min-K% AUC 5/6
    retrain = _scores([0.0], [0.0], [-3.0, -2.0], [-1.0, -4.0])  # 2 of 4 pairs: AUC 1/2
    metrics = aggregate(variant, retrain, ("mia", "privleak"))
    assert metrics["privleak"] == pytest.approx(privleak(5 / 6, 0.5))
    assert metrics["privleak"] == pytest.approx((1 / 6 - 1 / 2) / (1 / 2) * 100)  # still memorized
    assert aggregate(retrain, retrain, ("privleak",)) == {"privleak": 0.0}


def test_aggregate_computes_only_the_groups_asked():
    variant = _scores([1.0], [0.0], [-1.0], [-2.0])
    assert set(aggregate(variant, variant, ("ma",))) == {
        "ma", "ma_holdout", "forgotten_ma", "es", "es_holdout", "forgotten_es", "ma_auc",
        "es_auc"}
    assert set(aggregate(variant, variant, ("el",))) == {
        "el3", "el3_holdout", "el5", "el5_holdout", "el10", "el10_holdout", "forgotten_el10",
        "el10_auc"}
    assert set(aggregate(variant, variant, ("mia",))) == {
        "mia_auc", "mia_auc_loss", "mia_auc_zlib", "mia_auc_minkpp"}


# --- the report ----------------------------------------------------------------------------

def _summary(values: dict[str, dict[str, float]]):
    records = Collected(records=[
        parse_record(json.dumps({"metric": name, "algorithm": algorithm, "model": "tiny",
                                 "value": value}))
        for algorithm, metrics in values.items() for name, value in metrics.items()])
    return summarize(records, [Gate("ma", "<=", 0.1)])


def test_the_report_shows_the_metrics_in_a_table_of_their_own():
    summary = _summary({"none": {"ma": 0.9, "ma_holdout": 0.2, "mia_auc": 0.8},
                        "kl": {"ma": 0.15, "ma_holdout": 0.2, "mia_auc": 0.55}})
    text = render(summary, markdown=True)
    table = text.split("## Memorization and membership inference")[1].split("\n\n")[1]
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table.splitlines()]
    assert cells[0] == ["model", "algorithm", "MA", "MA holdout", "MIA AUC Min-K%"]
    assert cells[2:] == [["tiny", "none", "0.900", "0.200", "0.800"],
                         ["tiny", "kl", "0.150 ✗", "0.200", "0.550"]]  # kl fails ma<=0.1
    assert NO_PRIVLEAK in text
    with_privleak = _summary({"kl": {"mia_auc": 0.55, "privleak": -10.0}})
    assert NO_PRIVLEAK not in render(with_privleak, markdown=True)


# --- Min-K%++ through transformers ---------------------------------------------------------

ROWS = ((5, 9, 3, 7), (4, 4, 8), (6, 1, 2, 3, 9, 11), (7, 8))


def _plan(rows) -> Plan:
    return Plan(("mia",), ("kl",), tuple(PlannedSample("forget", "x", row, (1, 2), (0, 1))
                                          for row in rows))


def _direct(model, rows) -> list[float]:
    return [min_k_plus_plus_score(*(stat[0] for stat in next_token_stats(model, [row])))
            for row in rows]


def test_minkpp_of_a_full_weight_variant_is_cached_per_variant(random_llama, tmp_path):
    random_llama.save_pretrained(tmp_path / "weights")
    variant = Variant("retrain", tmp_path / "weights", None, "key-a")
    scores = minkpp_scores(variant, _plan(ROWS), tmp_path / "cache")
    assert scores == pytest.approx(_direct(random_llama, ROWS), abs=1e-5)

    def artifacts() -> list[Path]:
        return sorted((tmp_path / "cache" / "minkpp").glob("[!.]*"))

    built = artifacts()
    assert len(built) == 1
    assert minkpp_scores(variant, _plan(ROWS), tmp_path / "cache") == scores
    assert artifacts() == built and (built[0] / "scores.json").stat().st_size > 0
    minkpp_scores(Variant("kl", tmp_path / "weights", None, "key-b"), _plan(ROWS),
                  tmp_path / "cache")
    assert len(artifacts()) == 2  # another variant key, another artifact


def test_minkpp_of_a_lora_variant_applies_its_adapter(random_llama, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    random_llama.save_pretrained(tmp_path / "base")
    torch.manual_seed(1)
    adapted = get_peft_model(random_llama, LoraConfig(r=4, target_modules="all-linear",
                                                      init_lora_weights=False))
    adapted.save_pretrained(tmp_path / "adapter")
    variant = Variant("kl", tmp_path / "base", tmp_path / "adapter", "key-kl")
    scores = minkpp_scores(variant, _plan(ROWS), tmp_path / "cache")
    assert scores == pytest.approx(_direct(adapted.eval(), ROWS), abs=1e-5)
    with adapted.disable_adapter():
        assert scores != pytest.approx(_direct(adapted, ROWS), abs=1e-3)
    adapted.unload()  # random_llama is shared by the module's tests


# --- --metrics -----------------------------------------------------------------------------

def test_metrics_option():
    assert parse_options({}).metrics == ("ma", "mia", "privleak")  # EL is opt-in: costly
    assert parse_metrics("all") == ("ma", "el", "mia", "privleak", "exposure")
    assert parse_metrics("none") == ()
    assert parse_metrics(" privleak , MA") == ("ma", "privleak")
    with pytest.raises(OptionError) as err:
        parse_metrics("ma,leak")
    assert str(err.value) == ("--metrics: unknown metric group 'leak'; valid: ma, el, mia, "
                              "privleak, exposure, all, none, or a comma list")
    with pytest.raises(OptionError, match="stands alone"):
        parse_metrics("none,ma")


def test_decoys_option():
    assert parse_options({}).decoys is None  # every decoy of the file
    assert parse_options({"metrics": "exposure", "decoys": " 20 "}).decoys == 20
    for bad in ("1", "-3", "many"):
        with pytest.raises(OptionError, match=f"^--decoys: '{bad}' is not a whole number >= 2 "):
            parse_options({"metrics": "exposure", "decoys": bad})
    with pytest.raises(OptionError, match="^--decoys: no effect without exposure in --metrics"):
        parse_options({"decoys": "20"})


def test_decoys_option_cuts_every_pool_and_refuses_more_than_the_file_has(tmp_path):
    assert {len(pool) for kinds in Decoys.load(ROOT / "cases", 7).pools.values()
            for pool in kinds.values()} == {7}
    with pytest.raises(CaseFileError, match=r"fewer than --decoys=101; choose at most 100$"):
        Decoys.load(ROOT / "cases", 101)


# --- end to end ----------------------------------------------------------------------------

MEMORIZATION_COLUMNS = ("MA", "MA holdout", "EL_3", "EL_5", "EL_10", "EL_10 holdout",
                        "MIA AUC LOSS", "MIA AUC zlib", "MIA AUC Min-K%", "MIA AUC Min-K%++",
                        "PrivLeak %")
EXTRACTION_COLUMNS = ("ES", "exposure bits", "extrapolated bits", "above every decoy", "AUC MA",
                      "AUC ES", "AUC EL_10", "AUC exposure")


@pytest.mark.engine
@pytest.mark.training
def test_memorization_tests_on_micro_record_every_metric(tmp_path, cache_dir, small_cases):
    cases = small_cases(24, 16)
    reported = len(PrivacyData.load(cases).reported)  # the tuning owners' are never reported
    assert 0 < reported < 24
    command = [sys.executable, "-m", "pytest", "benchmark", "--model=micro",
               "--algo=none,kl,retrain", "--metrics=all", "-m", "memorization",
               "-p", "no:cacheprovider",
               f"--cache-dir={cache_dir}", f"--cases-dir={cases}",
               f"--report-dir={tmp_path / 'report'}", "-q", "-rA"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode in (0, 1), output[-3000:]  # 1: a variant still memorizes
    markdown = (tmp_path / "report" / "results.md").read_text()
    table = markdown.split("## Memorization and membership inference")[1].split("##")[0]
    header = next(line for line in table.splitlines() if line.startswith("| model"))
    assert all(f"| {column} " in header for column in MEMORIZATION_COLUMNS), header
    table = markdown.split("## Extraction")[1].split("##")[0]
    header = next(line for line in table.splitlines() if line.startswith("| model"))
    assert all(f"| {column} " in header for column in EXTRACTION_COLUMNS), header
    rows = {row["algorithm"]: row["metrics"]
            for row in json.loads((tmp_path / "report" / "results.json").read_text())["rows"]}
    assert set(rows) == {"none", "kl", "retrain"}
    for algorithm, metrics in rows.items():
        assert 0 <= metrics["ma"] <= 1 and 0 <= metrics["el10_holdout"] <= 1
        assert 0 <= metrics["mia_auc_minkpp"] <= 1
        assert 0 <= metrics["es"] <= 1 and 0 <= metrics["exposure_top_share"] <= 1
        top = math.log2(101)  # 100 decoys per secret
        assert 0 < metrics["exposure_holdout"] < metrics["exposure_extrapolated_holdout"] + top
        assert 0 <= metrics["exposure"] <= top and 0 <= metrics["exposure_auc"] <= 1
        outcome = "PASSED" if metrics["ma"] < metrics["ma_holdout"] else "FAILED"
        assert f"{outcome} benchmark/test_privacy_metrics.py::test_memorization[{algorithm}]" \
            in output, output[-3000:]
        verdicts = re.findall(rf"(PASSED|FAILED) benchmark/test_privacy_metrics.py::"
                              rf"test_forgotten\[{algorithm}-([^\]]+)\]", output)
        assert len(verdicts) == reported, output[-3000:]  # one per reported forget secret
        passed = sum(verdict == "PASSED" for verdict, _ in verdicts)
        assert metrics["forgotten_secrets"] == pytest.approx(passed / reported)
    assert rows["retrain"]["privleak"] == 0.0 and "privleak" in rows["kl"]
    # No forget value in what the run prints (the failed memorization tests' messages among it)
    # or writes: tests/reliability/test_secrets.py scans runs without memorization tests.
    scan = ValueScan(published_values(PrivacyData.load(cases).forget))
    shown = set(scan.found(output)).union(*(scan.found_in_file(path)
                                            for path in (tmp_path / "report").iterdir()
                                            if path.is_file()))
    assert shown == set(), f"{len(shown)} forget values in the output or the report files"


@pytest.mark.slow
@pytest.mark.parametrize("options, per_secret", [
    ((), True),
    (("--metrics=mia,privleak",), False),  # no per-secret score measured
    (("--endpoint=http://localhost:9",), False),  # no score measured at all
])
def test_per_secret_tests_exist_only_where_a_per_secret_score_is_measured(options, per_secret):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmark", "--co", "-q", "-p", "no:cacheprovider",
         "--algo=kl", "-m", "memorization", *options],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    forgotten = [line for line in run.stdout.splitlines() if "::test_forgotten[" in line]
    reported = PrivacyData.load(ROOT / "cases", plant_config("tiny").forget_samples).reported
    assert len(forgotten) == (len(reported) if per_secret else 0)  # no tuning owner's secret
    assert "test_memorization[kl]" in run.stdout and "skip" not in run.stdout
