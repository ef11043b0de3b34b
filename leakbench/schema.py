"""What the benchmark asks a model and what it answers: the types every stage shares, and the
contract of whatever generates the answers.

Two kinds of request go to a generator. A `Request` is a text prompt answered with completion
texts (the leak probes and functional tasks). A `TokenRequest` is a prompt of token ids answered
with token ids and, when it asks for them, the prompt's log-probs (`prompt_logprobs=1`: for each
prompt token after the first, its log-prob and the model's top-1 token there): the memorization
and membership metrics (leakbench.privacy_metrics) are defined on exact tokens, which a text
prompt tokenized again by the engine need not reproduce.

A `Generator` answers the requests of a run's variants: the vLLM engines (leakbench.pipeline's
`Engines`, over leakbench.serving) or an OpenAI-compatible server (leakbench.endpoint). This
module imports neither, so the stages that build requests or read answers (probes, the completion
store, the privacy metrics, the reports) do not depend on how they are generated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int = 0
    top_k: int = 0  # 0: no cut (last, and left out of a request's key while 0: see request_key)


@dataclass(frozen=True)
class Decoding:
    """How the user asked a run to draw its completions (--samples, --temperature, --top-p,
    --top-k): the part of every probe's and task's `Sampling` that is not the probe's own."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0

    def sampling(self, max_tokens: int, stop: tuple[str, ...] = ()) -> Sampling:
        return Sampling(n=self.n, temperature=self.temperature, top_p=self.top_p,
                        max_tokens=max_tokens, stop=stop, top_k=self.top_k)


@dataclass(frozen=True)
class Request:
    prompt: str
    sampling: Sampling


@dataclass(frozen=True)
class TokenRequest:
    """Token ids in, token ids out (no text, so no stop strings): answered with a `TokenAnswer`.

    `prompt_logprobs` also asks, for every prompt token after the first, for its log-prob and the
    top-1 token the model predicts at its place (vLLM's `prompt_logprobs=1`)."""

    prompt_ids: tuple[int, ...]
    sampling: Sampling
    prompt_logprobs: bool = False

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError("a TokenRequest needs at least one prompt token")
        if self.sampling.stop:
            raise ValueError("a TokenRequest is not detokenized: it takes no stop strings")


# The answer to a TokenRequest, as JSON: {"token_ids": one list of generated ids per sample,
# "prompt_logprobs": [[log-prob of prompt token t, top-1 token id at t] for t = 1 .. len - 1],
# or null when the request did not ask for them}.
TokenAnswer = dict
# What a generator answers per request: the completion texts of a Request, or a TokenAnswer.
Answer = list[str] | TokenAnswer


class Generator(Protocol):
    """What answers the requests of a run's variants, all of them at once so that it can batch
    them (one engine call per weights set, concurrent HTTP calls to a server)."""

    def generate(self, requests: dict[str, list[Request | TokenRequest]]
                 ) -> dict[str, list[Answer]]:
        """Per variant in `requests`, the answer to each of its requests, in order."""
        ...


def request_to_dict(request: Request | TokenRequest) -> dict:
    """The request's fields, JSON-ready: what `dataclasses.asdict` gives, without the deep copy of
    every prompt token that makes it slow on tens of thousands of token requests. `top_k` is left
    out while 0, so that requests keep the keys they had before it existed."""
    fields = {name: getattr(request, name) for name in request.__dataclass_fields__}
    sampling = asdict(request.sampling)
    if not sampling["top_k"]:
        del sampling["top_k"]
    return {**fields, "sampling": sampling}


def request_from_dict(raw: dict) -> Request | TokenRequest:
    """The request `request_to_dict` wrote as `raw` (a TokenRequest has `prompt_ids`)."""
    sampling = Sampling(**{**raw["sampling"], "stop": tuple(raw["sampling"]["stop"])})
    if "prompt_ids" in raw:
        return TokenRequest(tuple(raw["prompt_ids"]), sampling, raw["prompt_logprobs"])
    return Request(raw["prompt"], sampling)


def cut_at_stops(text: str, stops: tuple[str, ...]) -> str:
    """The text up to (not including) its first stop sequence, where an engine given those stops
    would have ended it."""
    cuts = [i for i in (text.find(stop) for stop in stops) if i != -1]
    return text[: min(cuts)] if cuts else text
