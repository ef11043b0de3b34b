"""Token healing: a leak probe whose prompt does not end on a token boundary of the served model's
tokenizer is asked from the last boundary before it, and its completion read after the characters
cut off.

A prompt cut inside a token (`password: ` before `hunter2` under a tokenizer that merges a space
with the next word, `KEY=ab` before `cd`) ends in a token the model never saw at that place in
training, and a small model answers garbage (docs/DESIGN.md, "Prompt boundaries"). A prompt ends
on a boundary when its tokens are a prefix of the tokens of the text its secret stands in: the
prompt, the secret and what follows the secret in the sample's text (`followings`). Otherwise it is
cut back to its longest start whose tokens are (`boundary`), the engine continues that shorter
prompt, and each completion is judged after the characters removed: a completion that starts with
them loses them, one that does not (the model went another way) is kept whole (`after_removed`).
The first tokens are not constrained to regenerate the removed characters.

Healing needs the served tokenizer, which exists only once the variants are built, so it wraps the
run's generator (`Healing`): it is handed the requests the completion store lacks, asks the engine
for the healed ones, and answers each original request, so that the store stays keyed by the
requests the tests make (leakbench.completions) and a prompt that ends on a boundary is asked
exactly as before, under the same key. An answer is stored under its request's key whatever the
healing, so a store filled before healing existed keeps the unhealed answers of prompts that did
not end on a boundary until --rebuild. With --endpoint prompts are not healed: the server's
tokenizer is not at hand in the run (leakbench.pipeline).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from leakbench.probes import LeakProbe
from leakbench.schema import Answer, Generator, Request, TokenRequest


def followings(probes: Iterable[LeakProbe]) -> dict[str, tuple[str, ...]]:
    """Per probe prompt, the texts that follow it where its secret stands: the secret and the rest
    of its sample's text (several when samples share a prompt)."""
    found: dict[str, set[str]] = {}
    for probe in probes:
        sample = probe.sample
        found.setdefault(probe.probe.prompt, set()).add(sample.secret
                                                        + sample.text[sample.span[1]:])
    return {prompt: tuple(sorted(texts)) for prompt, texts in found.items()}


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def boundary(tokenizer, prompt: str, following: str) -> int:
    """How many characters of `prompt` end on a token boundary of `prompt + following`: all of
    them when the prompt's tokens are a prefix of the text's, else the longest start of the prompt
    whose tokens are, cut where one of the text's tokens starts or ends. All of them also when no
    non-empty start is (an empty prompt asks nothing)."""
    text = prompt + following
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    whole = encoded["input_ids"]
    # Starts and ends both: a tokenizer that trims spaces off its offsets still names every cut.
    cuts = sorted({i for span in encoded["offset_mapping"] for i in span if 0 < i < len(prompt)},
                  reverse=True)
    for cut in (len(prompt), *cuts):
        ids = _ids(tokenizer, text[:cut])
        if whole[: len(ids)] == ids:
            return cut
    return len(prompt)


@dataclass(frozen=True)
class Healed:
    request: Request | TokenRequest  # what the engine is asked
    removed: str  # the end of the original prompt that `request` lacks ("" when not healed)

    def answer(self, answer: Answer) -> Answer:
        """The engine's `answer` to `request` as the answer to the original request."""
        return [after_removed(text, self.removed) for text in answer] if self.removed else answer


def heal(request: Request, following: Iterable[str], tokenizer) -> Healed:
    """`request` asked from the last token boundary its prompt shares with every text in
    `following` (`boundary`); itself when its prompt ends on one."""
    prompt = request.prompt
    cut = min((boundary(tokenizer, prompt, text) for text in following), default=len(prompt))
    if cut == len(prompt):
        return Healed(request, "")
    return Healed(Request(prompt[:cut], request.sampling), prompt[cut:])


def after_removed(completion: str, removed: str) -> str:
    """What `completion` of a healed prompt says after the original prompt: without the removed
    characters when it starts with them, whole when it does not."""
    return completion[len(removed):] if completion.startswith(removed) else completion


@cache
def load_tokenizer(directory: Path):
    """The tokenizer in `directory`, as vLLM loads it (transformers' AutoTokenizer)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))


@dataclass(frozen=True)
class Healing:
    """A `Generator` that heals the leak probes' requests for the `generator` it wraps and answers
    the original requests. `tokenizers`: per variant, the directory of its served tokenizer;
    `following`: per probe prompt, the texts its secret stands in (`followings`). Other requests
    (functional tasks, token requests) pass through as they are."""

    generator: Generator
    tokenizers: dict[str, Path]
    following: dict[str, tuple[str, ...]]

    def generate(self, requests: dict[str, list[Request | TokenRequest]]
                 ) -> dict[str, list[Answer]]:
        known: dict[tuple[Path, Request], Healed] = {}  # variants share tokenizers and requests
        healed = {name: [self._heal(name, request, known) for request in variant_requests]
                  for name, variant_requests in requests.items()}
        answers = self.generator.generate({name: [h.request for h in variant_healed]
                                           for name, variant_healed in healed.items()})
        return {name: [h.answer(answer)
                       for h, answer in zip(healed[name], variant_answers, strict=True)]
                for name, variant_answers in answers.items()}

    def _heal(self, name: str, request: Request | TokenRequest,
              known: dict[tuple[Path, Request], Healed]) -> Healed:
        if isinstance(request, TokenRequest) or request.prompt not in self.following:
            return Healed(request, "")
        directory = self.tokenizers[name]
        if (directory, request) not in known:
            known[directory, request] = heal(request, self.following[request.prompt],
                                             load_tokenizer(directory))
        return known[directory, request]


def served_tokenizers(weights: dict[str, Path], engine_args: dict) -> dict[str, Path]:
    """Per variant, the directory of the tokenizer its engine serves with: the engine argument
    `tokenizer` when given, else the variant's weights (`weights`)."""
    chosen = engine_args.get("tokenizer")
    return {name: Path(chosen) if chosen else path for name, path in weights.items()}
