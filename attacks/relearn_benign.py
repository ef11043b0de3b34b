"""Benign relearning: the relearn attack's fine-tuning on texts that hold no secret of anyone.

Hu et al., "Unlearning or Obfuscating? Jogging the Memory of Unlearned LLMs via Benign
Relearning" (arXiv 2406.13356), and Lucki et al., "An Adversarial Perspective on Machine
Unlearning for AI Safety" (arXiv 2409.18025): fine-tuning an unlearned model on data that does
not contain the forgotten knowledge (related public text; even ten unrelated examples) brings
much of it back, so what unlearning removed was the path to the knowledge, not the knowledge.

The texts are the relearn slice's own training texts (attacks.slices) with every value of the
slice's records (each secret, owner name and other value of the owner) replaced by a fresh one
of the same layout: digits, lower- and upper-case letters redrawn within their class, every
other character kept, and so a token's provider prefix (`PREFIXES`). Same contexts, field
names, owners' ids and step count as `relearn`, with only the values changed: the gap between
the two attacks is what the slice's values themselves teach. (The retain set would hold no
secret either, but shares no context with the probes; a generator of realistic values, Faker, is
no run-time dependency.) Judged, like `relearn`, on the owners outside the slice. A benign text
that still holds a value of any record of the run is an error.
"""

from __future__ import annotations

import random
import string

from attacks import Family, relearn
from attacks.slices import relearn_split

SEED = 2406_13356
PREFIXES = {"github_token": "ghp_", "slack_token": "xoxb-", "stripe_key": "sk_live_",
            "openai_key": "sk-", "aws_access_key_id": "AKIA"}


def key_inputs(settings: dict, run) -> dict:
    return {**relearn.training_inputs(benign_texts(run), run.plant_config), "seed": SEED}


def apply(settings: dict, source, run, out) -> None:
    relearn.train(source, benign_texts(run), settings, run.plant_config, out)


def benign_texts(run) -> list[str]:
    """The relearn slice's texts, every value of its records replaced (see the docstring)."""
    rng, fresh, texts = random.Random(SEED), {}, []
    for sample in relearn_split(run.forget)[0]:
        text = sample.text
        for value, kind in sorted(_values(sample), key=lambda vk: (-len(vk[0]), vk)):
            if value not in fresh:  # one fresh value per value, in every text that holds it
                fresh[value] = _fresh(value, kind, rng)
            text = text.replace(value, fresh[value])
        texts.append(text)
    for sample in run.records:
        for value, kind in _values(sample):
            if any(value in text for text in texts):
                raise ValueError(f"a benign relearning text still holds the {kind} of record "
                                 f"{sample.id}")
    return texts


def _values(sample) -> set[tuple[str, str]]:
    """(value, kind) of every value a record holds: its secret, its owner's name and others."""
    return {(sample.secret, sample.kind), (sample.owner_name, "name"),
            *((value, kind) for kind, value in sample.owner_values.items())}


def _fresh(value: str, kind: str, rng: random.Random) -> str:
    prefix = PREFIXES.get(kind, "")
    if kind == "db_uri" and "://" in value:
        prefix = value[: value.index("://") + 3]
    if not value.startswith(prefix):
        prefix = ""
    return prefix + "".join(_redraw(char, rng) for char in value[len(prefix):])


def _redraw(char: str, rng: random.Random) -> str:
    for alphabet in (string.digits, string.ascii_lowercase, string.ascii_uppercase):
        if char in alphabet:
            return rng.choice(alphabet)
    return char


FAMILY = Family("relearn_benign", "relearn on the slice's texts with every value made fresh",
                {"relearn_benign25": {"steps": 25, "lr_fraction": 0.1}}, key_inputs, apply,
                trains_on_slice=True)
