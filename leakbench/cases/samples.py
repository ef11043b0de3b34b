"""The case model: a `Sample` (one training text holding one sensitive value, its secret) and
its `Probe`s (prompts that ask a model for that value), with the kinds of values there are."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
