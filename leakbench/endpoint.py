"""Generation through an existing OpenAI-compatible vLLM server (`--endpoint URL`), for clusters.

Instead of starting an engine, requests go to the server's `/v1/completions`, many prompts per HTTP
request and several HTTP requests at once. A variant is addressed by model name: a LoRA adapter the
server was started with (`--lora-modules kl=/path/to/adapter`) under the algorithm's name, the base
model for everything the server does not list by that name.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from leakbench.serving import Request

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


def cut_at_stops(text: str, stops: tuple[str, ...]) -> str:
    """The text up to the first stop sequence, as the engine would have ended it."""
    cuts = [i for i in (text.find(stop) for stop in stops) if i != -1]
    return text[: min(cuts)] if cuts else text


def model_for(variant: str, served: list[str]) -> str:
    """The served model that stands for `variant`: its LoRA module if listed, else the base."""
    return variant if variant in served else served[0]


def generate(endpoint: str, variant: str, requests: list[Request], *, timeout_s: float = 600
             ) -> list[list[str]]:
    """Completions for each request, in order, from the model that stands for `variant`."""
    endpoint = endpoint.rstrip("/")
    model = model_for(variant, served_models(endpoint))
    # One call carries prompts that share sampling parameters, as the completions API requires.
    groups: dict[tuple, list[int]] = {}
    for i, request in enumerate(requests):
        groups.setdefault(tuple(sorted(vars(request.sampling).items())), []).append(i)
    calls = [indices[j : j + PROMPTS_PER_CALL]
             for indices in groups.values() for j in range(0, len(indices), PROMPTS_PER_CALL)]

    def complete(indices: list[int]) -> list[list[str]]:
        s = requests[indices[0]].sampling
        payload = {"model": model, "prompt": [requests[i].prompt for i in indices], "n": s.n,
                   "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens,
                   "stop": list(s.stop[:SERVER_STOPS]) or None, "seed": s.seed}
        choices = _call(f"{endpoint}/v1/completions", payload, timeout_s)["choices"]
        texts: list[list[str]] = [[] for _ in indices]
        for choice in sorted(choices, key=lambda c: c["index"]):
            # Stops past the server's limit end the text here instead, as an engine would.
            texts[choice["index"] // s.n].append(cut_at_stops(choice["text"], s.stop))
        return texts

    results: list[list[str]] = [[] for _ in requests]
    with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
        for indices, texts in zip(calls, pool.map(complete, calls), strict=True):
            for i, text in zip(indices, texts, strict=True):
                results[i] = text
    return results
