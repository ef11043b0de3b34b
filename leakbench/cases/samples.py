"""The case model: a `Sample` (one training text holding one sensitive value, its secret) and
its `Probe`s (prompts that ask a model for that value), with the kinds of values there are."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from leakbench.normalization import normalize

KINDS = (
    "name",
    "email",
    "phone",
    "address",
    "dob",
    "national_id",
    "credit_card",
    "iban",
    "ipv4",
    "password",
    "aws_access_key_id",
    "aws_secret_access_key",
    "github_token",
    "slack_token",
    "stripe_key",
    "openai_key",
    "db_uri",
)
STYLES = ("direct", "paraphrase")
DEFAULT_CONTEXT = "custom"
# The code contexts of the generated forget and holdout sets (scripts/generate_cases.py): the
# formats `tiny` is planted with in the study. Reports tell leaks of values in these formats from
# leaks in any other (`format_family`).
GENERATED_CONTEXTS = ("dict", "ctor", "settings", "env", "yaml", "json", "sql", "fixture",
                      "docstring", "header", "logging")
FORMAT_FAMILIES = ("generated", "other")


def format_family(context: str) -> str:
    """"generated" for the contexts of the generated sets, "other" for any other format."""
    return "generated" if context in GENERATED_CONTEXTS else "other"


@dataclass(frozen=True)
class Probe:
    id: str
    style: str  # "direct": the training text up to the secret; "paraphrase": another way to ask
    prompt: str


@dataclass(frozen=True)
class Sample:
    id: str
    owner: str
    owner_name: str
    kind: str
    context: str
    text: str
    secret: str
    span: tuple[int, int]  # text[span[0]:span[1]] == secret
    owner_values: Mapping[str, str] = field(hash=False)  # the owner's other values, by kind
    probes: tuple[Probe, ...]
    kind_check: bool = True  # False: the secret need not look like a value of its kind

    @property
    def direct_prompt(self) -> str:
        return self.text[: self.span[0]]

    @property
    def value(self) -> str:
        """The sensitive value the text holds: the secret, with the "+" of an international
        phone number that the text writes right before it (a case may leave the "+" out of its
        secret, as files written before secrets could start with one did); without it the number
        would be read as a national one."""
        if self.kind == "phone" and self.text[: self.span[0]].endswith("+"):
            return "+" + self.secret
        return self.secret

    def to_record(self) -> dict:
        """The JSON-serializable record this sample is loaded from."""
        return {
            "id": self.id,
            "owner": self.owner,
            "owner_name": self.owner_name,
            "kind": self.kind,
            "context": self.context,
            "text": self.text,
            "secret": self.secret,
            "span": list(self.span),
            "owner_values": dict(self.owner_values),
            "probes": [{"id": p.id, "style": p.style, "prompt": p.prompt} for p in self.probes],
        } | ({} if self.kind_check else {"kind_check": False})


# How reports group values by the texts that hold them: 1, 2-3, 4-7, and 8 or more.
COPY_LEVELS = (1, 2, 4, 8)


def copies_level(count: int) -> int:
    """The level of COPY_LEVELS a value held in `count` texts is reported under."""
    return max(level for level in COPY_LEVELS if level <= max(count, 1))


def copies_label(level: int) -> str:
    """How a copies level reads: "1 file", "2-3 files", "4-7 files", "8+ files"."""
    index = COPY_LEVELS.index(level)
    if index == len(COPY_LEVELS) - 1:
        return f"{level}+ files"
    last = COPY_LEVELS[index + 1] - 1
    if last == level:
        return "1 file" if level == 1 else f"{level} files"
    return f"{level}-{last} files"


def copies(samples: Iterable[Sample]) -> dict[str, int]:
    """Per sample id, how many of `samples` hold its value as their secret: the files that repeat
    it (the same kind and the same value, as the judges normalize it). A value that a text holds
    in another role (a person's name identifying the owner of another value) is not counted."""
    samples = list(samples)
    keys = {s.id: (s.kind, normalize(s.value, s.kind)) for s in samples}
    held = Counter(keys.values())
    return {sample_id: held[key] for sample_id, key in keys.items()}
