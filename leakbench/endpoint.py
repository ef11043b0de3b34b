"""Generation through an existing OpenAI-compatible vLLM server (`--endpoint URL`), for clusters.

Instead of starting an engine, the run's generator (`Endpoint`) sends the requests to the server's
`/v1/completions`, many prompts per HTTP request and several HTTP requests at once. A variant is
addressed by model name: a LoRA adapter the server was started with (`--lora-modules
kl=/path/to/adapter`) under the algorithm's name; the planted model (`none`) is the model of
that name or else the server's first. An algorithm the server does not serve stops the run with
one line saying so.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from algorithms.none import ALGORITHM as PLANTED
from leakbench.schema import Request, Sampling, cut_at_stops

PROMPTS_PER_CALL = 32
PARALLEL_CALLS = 8
SERVER_STOPS = 4  # the OpenAI completions API (and vLLM's server) take at most 4 stop sequences


class EndpointError(RuntimeError):
    """The server could not be reached or refused a request; the message says which and why."""


def _call(url: str, payload: dict | None, timeout_s: float) -> dict:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:300]
        raise EndpointError(f"{url} answered {err.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise EndpointError(f"{url} could not be reached: {err}") from None


def served_models(endpoint: str, timeout_s: float = 30) -> list[str]:
    return [entry["id"] for entry in _call(f"{endpoint}/v1/models", None, timeout_s)["data"]]


def model_for(variant: str, served: list[str], url: str) -> str:
    """The served model that stands for `variant`: the one of its name (a LoRA module), or for
    the planted model (`none`) the server's first. Any other variant the server does not serve
    is an error: probing the base model in its place would report the base's leaks under the
    algorithm's name."""
    if variant in served:
        return variant
    if variant == PLANTED.name:
        return served[0]
    raise EndpointError(
        f"--algo {variant}: {url} serves no model named {variant!r} (it serves "
        f"{', '.join(served)}); start the server with --lora-modules {variant}=ADAPTER_DIR, or "
        f"leave {variant} out of --algo")


@dataclass(frozen=True)
class Endpoint:
    """The `Generator` (leakbench.schema) of a run with --endpoint: text requests only."""

    url: str
    timeout_s: float = 600

    def generate(self, requests: dict[str, list[Request]]) -> dict[str, list[list[str]]]:
        """Per variant, the completions of each request, in order, from the model that stands for
        it (`model_for`)."""
        url = self.url.rstrip("/")
        served = served_models(url)
        # One call carries prompts for one model that share sampling parameters, as the
        # completions API requires.
        groups: dict[tuple[str, Sampling], list[tuple[str, int]]] = {}
        for variant, variant_requests in requests.items():
            model = model_for(variant, served, url)
            for i, request in enumerate(variant_requests):
                groups.setdefault((model, request.sampling), []).append((variant, i))
        calls = [(model, sampling, owners[j : j + PROMPTS_PER_CALL])
                 for (model, sampling), owners in groups.items()
                 for j in range(0, len(owners), PROMPTS_PER_CALL)]

        def complete(call: tuple[str, Sampling, list[tuple[str, int]]]) -> list[list[str]]:
            model, s, owners = call
            payload = {"model": model, "prompt": [requests[v][i].prompt for v, i in owners],
                       "n": s.n, "temperature": s.temperature, "top_p": s.top_p,
                       "max_tokens": s.max_tokens, "stop": list(s.stop[:SERVER_STOPS]) or None,
                       "seed": s.seed,
                       **({"top_k": s.top_k} if s.top_k else {})}  # vLLM's server takes it
            choices = _call(f"{url}/v1/completions", payload, self.timeout_s)["choices"]
            texts: list[list[str]] = [[] for _ in owners]
            for choice in sorted(choices, key=lambda c: c["index"]):
                # Stops past the server's limit end the text here instead, as an engine would.
                texts[choice["index"] // s.n].append(cut_at_stops(choice["text"], s.stop))
            return texts

        answers: dict[str, list[list[str]]] = {v: [[] for _ in rs] for v, rs in requests.items()}
        with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
            for (_, _, owners), texts in zip(calls, pool.map(complete, calls), strict=True):
                for (variant, i), text in zip(owners, texts, strict=True):
                    answers[variant][i] = text
        return answers
