"""The generated forget and holdout sets and decoys, and the repeated set (values held in several
files): reproducible, large and varied enough, well-formed."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import faker
import pytest
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.stripe import StripeDetector

from leakbench.cases import (
    DECOYS_FILE,
    FORGET_FILE,
    GENERATED_CONTEXTS,
    HOLDOUT_FILE,
    copies,
    copies_level,
    dumps_decoys,
    dumps_jsonl,
    load_jsonl,
    token_boundary_problem,
)
from leakbench.corpus import retain_texts
from leakbench.judges import SecretIndex
from leakbench.normalization import normalize
from leakbench.plant import plant_config, planting_batches
from leakbench.probes import PrivacyData

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"
GENERATOR = ROOT / "scripts" / "generate_cases.py"


@pytest.fixture(scope="module")
def generate_cases():
    """scripts/generate_cases.py, loaded from its file: a script, not a module of a package
    (registered under its name while it loads, as its dataclasses need)."""
    spec = importlib.util.spec_from_file_location("generate_cases", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(generate_cases):
    return generate_cases.generate()


@pytest.fixture(scope="module")
def forget():
    return load_jsonl(CASES / FORGET_FILE)


@pytest.fixture(scope="module")
def holdout():
    return load_jsonl(CASES / HOLDOUT_FILE)


@pytest.mark.slow
def test_committed_files_are_regenerated_byte_for_byte(generate_cases, generated):
    hint = (f"regenerate with `python scripts/generate_cases.py --write` (generated with Faker "
            f"{generate_cases.FAKER_VERSION}, running {faker.VERSION})")
    forget, holdout, decoys = generated
    for name, samples in ((FORGET_FILE, forget), (HOLDOUT_FILE, holdout)):
        assert dumps_jsonl(samples) == (CASES / name).read_text(encoding="utf-8"), hint
    assert dumps_decoys(decoys) == (CASES / DECOYS_FILE).read_text(encoding="utf-8"), hint


@pytest.mark.slow
def test_cli_writes_the_same_files_and_prints_stats(generate_cases, tmp_path, capsys):
    assert generate_cases.main(["--write", "--stats", "--dir", str(tmp_path)]) == 0
    for name in (FORGET_FILE, HOLDOUT_FILE, DECOYS_FILE):
        assert (tmp_path / name).read_bytes() == (CASES / name).read_bytes()
    out = capsys.readouterr().out
    assert re.search(r"^samples\s+\d+\s+\d+$", out, re.M)
    assert re.search(r"^aws_access_key_id\s+\d+\s+\d+$", out, re.M)
    assert re.search(r"^logging\s+\d+\s+\d+$", out, re.M)


def test_cli_needs_an_action(generate_cases):
    with pytest.raises(SystemExit):
        generate_cases.main([])


def test_sizes(forget, holdout):
    owners = {s.owner for s in forget}
    assert len(forget) >= 1000
    assert len(owners) >= 200
    assert {o.split("-")[0] for o in owners} == {"person", "org"}
    assert len({s.kind for s in forget}) >= 12
    assert len({s.context for s in forget}) >= 8
    assert len(holdout) >= 0.25 * len(forget)
    assert {s.kind for s in holdout} == {s.kind for s in forget}


def test_every_kind_appears_in_several_contexts(forget):
    contexts = defaultdict(set)
    for s in forget:
        contexts[s.kind].add(s.context)
    assert min(len(c) for c in contexts.values()) >= 5, contexts


def test_each_owner_has_several_kinds_in_several_contexts(forget):
    by_owner = defaultdict(list)
    for s in forget:
        by_owner[s.owner].append(s)
    for owner, samples in by_owner.items():
        assert len({s.kind for s in samples}) >= 4, owner
        assert len({s.context for s in samples}) >= 2, owner


def test_records_are_well_formed(forget, holdout):
    samples = forget + holdout
    assert len({s.id for s in samples}) == len(samples)
    for s in samples:
        assert re.fullmatch(rf"{s.kind}-{s.context}-\d{{4}}", s.id)
        assert s.text[s.span[0]:s.span[1]] == s.secret
        assert 150 <= len(s.text) <= 600, s.id
        assert s.kind not in s.owner_values
        direct, paraphrase = s.probes
        assert direct.prompt == s.text[:s.span[0]]
        assert paraphrase.prompt != direct.prompt
        identifiers = {s.owner, s.owner_name, s.owner_values.get("email")} - {s.secret, None}
        assert any(i in paraphrase.prompt for i in identifiers), s.id  # asks about this owner
        for probe in s.probes:
            assert token_boundary_problem(probe.prompt, s.secret) is None, (s.id, probe.id)
            assert s.secret not in probe.prompt


def test_holdout_is_disjoint_from_forget(forget, holdout):
    def values(samples):
        return {(k, normalize(v, k)) for s in samples
                for k, v in [(s.kind, s.secret), *s.owner_values.items()]}

    assert not {s.owner for s in forget} & {s.owner for s in holdout}
    assert not {s.owner_name for s in forget} & {s.owner_name for s in holdout}
    assert not values(forget) & values(holdout)
    index = SecretIndex(forget)
    assert [hit for s in holdout for hit in index.find(s.text)] == []


@pytest.mark.parametrize("kind, plugin, line", [
    ("aws_access_key_id", AWSKeyDetector, "{}"),
    ("aws_secret_access_key", AWSKeyDetector, 'aws_secret_access_key = "{}"'),
    ("github_token", GitHubTokenDetector, "{}"),
    ("slack_token", SlackDetector, "{}"),
    ("stripe_key", StripeDetector, "{}"),
    ("openai_key", OpenAIDetector, "{}"),
])
def test_provider_keys_are_recognised_by_detect_secrets(forget, kind, plugin, line):
    secrets = [s.secret for s in forget if s.kind == kind]
    assert secrets
    for secret in secrets:  # the plugins' own patterns, matched as their scanner matches them
        text = line.format(secret)
        matches = [m.group() for regex in plugin().denylist for m in regex.finditer(text)]
        assert any(secret in match for match in matches), secret


# --- The repeated set: one value in several files -------------------------------------------------

REPEATED = CASES / "repeated"


@pytest.fixture(scope="module")
def repeated(generate_cases):
    """The committed repeated set as a run plants it: its case file whole (a user case file is
    never thinned out), beside an empty generated forget set."""
    planted = PrivacyData.load(REPEATED, plant_config("tiny").forget_samples)
    assert len(planted.forget) == len(load_jsonl(REPEATED / generate_cases.REPEATED_FILE))
    return planted


@pytest.mark.slow
def test_committed_repeated_files_are_regenerated_byte_for_byte(generate_cases, tmp_path):
    assert generate_cases.main(["--write", "--repeated", "--dir", str(tmp_path)]) == 0
    names = (generate_cases.REPEATED_FILE, FORGET_FILE, HOLDOUT_FILE, DECOYS_FILE)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    for name in names:
        assert (tmp_path / name).read_bytes() == (REPEATED / name).read_bytes(), (
            "regenerate with `python scripts/generate_cases.py --write --repeated`")


def _values(samples):
    """(kind, normalized value) -> the samples that hold it."""
    held = defaultdict(list)
    for sample in samples:
        held[sample.kind, normalize(sample.value, sample.kind)].append(sample)
    return held


@pytest.mark.parametrize("family", ["tiny", "micro"])
def test_a_repeated_value_is_planted_in_exactly_its_number_of_files(generate_cases, family):
    """Every value of the repeated set is in exactly d of the texts one planting epoch trains on
    (d of REPEATED_OWNERS), each copy in another context of one family of formats, and the
    probes say d."""
    data = PrivacyData.load(REPEATED, plant_config(family).forget_samples)
    config = plant_config("tiny")
    epoch = [text for batch in planting_batches(
        [s.text for s in data.forget], retain_texts(len(data.forget)), replace(config, epochs=1))
        for text in batch]
    cells = defaultdict(int)
    for samples in _values(data.forget).values():
        d = len(samples)
        assert sum(samples[0].secret in text for text in epoch) == d, samples[0].id
        contexts = {s.context for s in samples}
        families = {"generated" if c in generate_cases.CONTEXTS else "repository"
                    for c in contexts}
        assert len(contexts) == d and len(families) == 1, samples[0].id
        cells[d, *families] += 1
    kinds = len(generate_cases.REPEATED_KINDS["person"])
    assert cells == {(d, family): owners * kinds for d, owners in
                     generate_cases.REPEATED_OWNERS.items() for family in generate_cases.FAMILIES}
    held = copies(data.forget)
    assert {(p.copies == held[p.sample.id]) for p in data.leak_probes("forget")} == {True}


def test_the_repeated_holdout_mirrors_the_layout_with_values_never_planted(repeated):
    planted, mirror = _values(repeated.forget), _values(repeated.holdout)
    assert not set(planted) & set(mirror)
    assert not {s.owner for s in repeated.forget} & {s.owner for s in repeated.holdout}
    layout = [sorted(len(samples) for samples in values.values()) for values in (planted, mirror)]
    assert layout[0] == layout[1]
    assert {copies_level(p.copies) for p in repeated.leak_probes("holdout")} == {1, 2, 4, 8}


def test_repeated_prompts_end_on_a_token_boundary_in_every_format(generate_cases, repeated):
    assert set(generate_cases.CONTEXTS) == set(GENERATED_CONTEXTS)
    assert not set(generate_cases.REPOSITORY_FORMATS) & set(GENERATED_CONTEXTS)
    contexts = {s.context for s in repeated.forget + repeated.holdout}
    assert set(generate_cases.REPOSITORY_FORMATS) <= contexts
    for sample in repeated.forget + repeated.holdout:
        assert sample.text[sample.span[0]:sample.span[1]] == sample.secret
        for probe in sample.probes:
            assert token_boundary_problem(probe.prompt, sample.secret) is None, sample.id
