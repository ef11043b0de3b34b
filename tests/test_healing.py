"""Token healing (leakbench.healing): user cases whose prompts end anywhere are healed with the real
tokenizers to a token boundary, their completions read after the characters removed, and the
committed cases' probes, which end on a boundary, asked exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
from tokenizers.models import BPE

from leakbench import corpus, healing, models, pipeline, tiny
from leakbench import tokenizer as bpe
from leakbench.cases import load_case_file
from leakbench.completions import Store, request_key
from leakbench.probes import LeakProbe, PrivacyData
from leakbench.schema import Decoding, Request, Sampling, TokenRequest
from leakbench.unlearn import Variant

REPO = Path(__file__).resolve().parents[1]

# One user case per way of ending a prompt inside a token of a usual BPE tokenizer, as a YAML
# case file: (id, kind, text, secret).
ENDINGS = [
    ("space", "password", "login hunter2now\n", "hunter2now"),
    ("letter", "password", "mode=returned\n", "turned"),
    ("colon-space", "password", "db:\n  password: hunter2\n", "hunter2"),
    ("equals-space", "password", "db.password = s3cretPass\n", "s3cretPass"),
    ("quote-before-s", "email", "INSERT INTO users VALUES ('sam@x.org');\n", "sam@x.org"),
    ("plus-phone", "phone", 'TEL = "+44 20 7946 0958"\n', "+44 20 7946 0958"),
]


def yaml_case_file(path: Path) -> Path:
    path.write_text("".join(f"- id: {case_id}\n  owner: org-acme\n  kind: {kind}\n"
                            f"  text: {json.dumps(text)}\n  secret: {json.dumps(secret)}\n"
                            for case_id, kind, text, secret in ENDINGS))
    return path


def saved(tokenizer: Tokenizer, directory: Path) -> Path:
    """A model directory that holds `tokenizer` as a built model's does."""
    bpe.save_pretrained(tokenizer, directory, 1024)
    return directory


@pytest.fixture(scope="module", params=["micro", "tiny"])
def served_dir(request, tmp_path_factory) -> Path:
    """The tokenizer of the built-in model the parameter names, trained as its build trains it
    (leakbench.tiny), without the model."""
    config = tiny.CONFIGS[request.param]
    stdlib, tasks = tiny.training_texts(config)
    return saved(bpe.train(stdlib + tasks, config.vocab_size), tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def served(served_dir):
    return healing.load_tokenizer(served_dir)


@pytest.fixture(scope="module")
def gpt2_style(tmp_path_factory):
    """A BPE with GPT-2's pre-tokenizer, which merges a space into the next word and `'` into a
    following contraction."""
    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(corpus.task_texts(), trainers.BpeTrainer(
        vocab_size=512, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[bpe.BOS, bpe.EOS, bpe.PAD], show_progress=False))
    return healing.load_tokenizer(saved(tokenizer, tmp_path_factory.mktemp("gpt2")))


@pytest.fixture
def user_probes(tmp_path) -> list[LeakProbe]:
    samples = load_case_file(yaml_case_file(tmp_path / "endings.yaml"))
    assert [s.id for s in samples] == [case_id for case_id, *_ in ENDINGS]
    return PrivacyData(samples, []).leak_probes("forget")


def request_of(probe: LeakProbe) -> Request:
    return probe.request(Decoding())


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def check_healed(tokenizer, probe: LeakProbe) -> healing.Healed:
    """Heal `probe`'s request; assert that the healed prompt ends on a boundary of the text its
    secret stands in and that the removed characters and the rest of that text rebuild what
    follows the original prompt."""
    original = request_of(probe)
    [following] = healing.followings([probe])[original.prompt]
    healed = healing.heal(original, [following], tokenizer)
    prompt = healed.request.prompt
    assert prompt and prompt + healed.removed == original.prompt
    assert healed.request.sampling == original.sampling
    whole = ids(tokenizer, original.prompt + following)
    assert whole[: len(ids(tokenizer, prompt))] == ids(tokenizer, prompt)
    # A model that says the text on from the healed prompt said, after the original prompt:
    completion = healed.removed + following
    assert healing.after_removed(completion, healed.removed) == following
    return healed


def test_user_cases_ending_anywhere_are_healed_with_the_built_in_tokenizers(served, user_probes):
    healed = {probe.sample.id: check_healed(served, probe) for probe in user_probes}
    # Only a letter before a letter splits a token of the built-in tokenizers (leakbench.tokenizer).
    assert {case_id for case_id, h in healed.items() if h.removed} == {"letter"}
    assert healed["letter"].request.prompt == "mode="


def test_user_cases_ending_anywhere_are_healed_with_a_gpt2_style_tokenizer(gpt2_style,
                                                                          user_probes):
    healed = {probe.sample.id: check_healed(gpt2_style, probe) for probe in user_probes}
    # GPT-2's pre-tokenizer merges `'s` only after a letter or digit: not in `VALUES ('`.
    assert {case_id: h.removed for case_id, h in healed.items() if h.removed} == {
        "space": " ", "letter": "e", "colon-space": " ", "equals-space": " "}


def test_committed_probes_are_asked_as_before(served):
    data = PrivacyData.load(REPO / "cases")
    probes = data.leak_probes("forget") + data.leak_probes("holdout")
    following = healing.followings(probes)
    for probe in probes:
        original = request_of(probe)
        healed = healing.heal(original, following[original.prompt], served)
        assert healed == healing.Healed(original, ""), probe.test_id
        assert request_key(healed.request) == request_key(original)


def test_after_removed_keeps_a_completion_that_went_another_way():
    assert healing.after_removed("abc\n", "ab") == "c\n"
    assert healing.after_removed("xbc\n", "ab") == "xbc\n"
    assert healing.after_removed("a", "ab") == "a"


TOKEN_ANSWER = {"token_ids": [[4]], "prompt_logprobs": None}


class Scripted:
    """A generator that answers each prompt with the completion scripted for it, and keeps what it
    was asked."""

    def __init__(self, completions: dict[str, list[str]]):
        self.completions = completions
        self.asked: dict[str, list] = {}

    def generate(self, requests):
        self.asked = requests
        return {name: [TOKEN_ANSWER if isinstance(r, TokenRequest) else self.completions[r.prompt]
                       for r in rs] for name, rs in requests.items()}


def test_healing_generator_stores_answers_under_the_original_requests(served_dir, user_probes,
                                                                      tmp_path):
    letter = next(p for p in user_probes if p.sample.id == "letter")
    space = next(p for p in user_probes if p.sample.id == "space")
    functional = Request("def f():\n", Sampling(max_tokens=8))
    tokens = TokenRequest((1, 2, 3), Sampling(max_tokens=1))
    asked = [request_of(letter), request_of(space), functional, tokens]
    scripted = Scripted({"mode=": ["returned\n", "xyz\n"], "login ": ["hunter2now\n"],
                         "def f():\n": ["    pass\n"]})
    generator = healing.Healing(scripted, {"kl": served_dir}, healing.followings(user_probes))

    answers = pipeline.fill({"kl": Store(tmp_path / "store")}, {"kl": asked}, generator)["kl"]

    assert scripted.asked["kl"] == [Request("mode=", request_of(letter).sampling),
                                    request_of(space), functional, tokens]
    assert answers == {request_key(request_of(letter)): ["turned\n", "xyz\n"],
                       request_key(request_of(space)): ["hunter2now\n"],
                       request_key(functional): ["    pass\n"], request_key(tokens): TOKEN_ANSWER}


def test_the_served_tokenizer_is_the_engine_arguments_or_the_weights():
    weights = {"kl": Path("/w/planted"), "npo": Path("/w/npo")}
    assert healing.served_tokenizers(weights, {}) == weights
    assert healing.served_tokenizers(weights, {"tokenizer": "/t"}) == {"kl": Path("/t"),
                                                                       "npo": Path("/t")}


@pytest.mark.training
def test_the_built_micro_model_heals_as_its_tokenizer_trained_alone(micro_model, user_probes,
                                                                    tmp_path):
    """The tokenizers trained here are the built models' own: healing through a built model's
    directory, as the pipeline does, gives the same requests."""
    stdlib, tasks = tiny.training_texts(tiny.MICRO)
    alone = healing.load_tokenizer(saved(bpe.train(stdlib + tasks, tiny.MICRO.vocab_size),
                                         tmp_path))
    built = healing.load_tokenizer(micro_model)
    assert built.get_vocab() == alone.get_vocab()
    assert ([check_healed(built, probe) for probe in user_probes]
            == [check_healed(alone, probe) for probe in user_probes])


def test_prepare_heals_the_engines_requests_and_keeps_the_original_keys(served_dir, user_probes,
                                                                       tmp_path, monkeypatch):
    letter = next(p for p in user_probes if p.sample.id == "letter")
    data = PrivacyData([letter.sample], [])
    asked: list[dict] = []

    def engines_generate(self, requests):
        asked.append(requests)
        return {name: [["returned\n"] for _ in rs] for name, rs in requests.items()}

    monkeypatch.setattr(pipeline, "check_engine_memory", lambda *args: None)
    monkeypatch.setattr(pipeline, "build_variants", lambda *args: {
        "kl": Variant("kl", served_dir, None, "kl-key")})
    monkeypatch.setattr(pipeline.Engines, "generate", engines_generate)
    prepared = pipeline.prepare(models.lookup("micro"), ("kl",), data,
                                {"kl": [request_of(letter)]}, tmp_path, rebuild=False,
                                run_id="r")
    assert asked == [{"kl": [Request("mode=", request_of(letter).sampling)]}]
    assert prepared.of("kl", request_of(letter)) == ["turned\n"]
