"""The completion store: every answer ever generated for a variant, keyed by request.

One directory per variant key; inside, shards named by the SHA-256 of their own content, each a JSON
map from request key to answer: for a text `Request` (key: prompt + sampling) its completions, for a
`TokenRequest` (key: prompt ids + sampling + whether prompt log-probs were asked) its
`TokenAnswer`. A shard is written to a temporary name and renamed, so a reader sees whole shards
only; a shard whose content does not match its name (corrupted, truncated, edited) is ignored and
its requests are generated again. A later run, or a run with more probes, generates only what is
missing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from leakbench.atomic import write_atomically
from leakbench.schema import Answer, Request, TokenRequest, request_to_dict


def request_key(request: Request | TokenRequest) -> str:
    """The hash of every field of the request; the two kinds have different fields, so their keys
    never meet (and a text Request keeps the key it always had: prompt + sampling)."""
    payload = json.dumps(request_to_dict(request), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


class Store:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def load(self) -> dict[str, Answer]:
        found: dict[str, Answer] = {}
        if not self.directory.is_dir():
            return found
        for shard in sorted(self.directory.glob("*.json")):
            data = shard.read_bytes()
            if hashlib.sha256(data).hexdigest()[:24] != shard.stem:
                continue  # not what was written: regenerate rather than trust it
            found.update(json.loads(data))
        return found

    def missing(self, requests: list[Request | TokenRequest],
                held: dict[str, Answer] | None = None) -> list[Request | TokenRequest]:
        """The requests, once each, that the store has no answer for; `held`: its answers, when
        the caller has loaded them already."""
        have = self.load() if held is None else held
        seen, out = set(), []
        for request in requests:
            key = request_key(request)
            if key not in have and key not in seen:
                seen.add(key)
                out.append(request)
        return out

    def clear(self) -> None:
        """Forget every answer (a rebuilt variant must be asked again)."""
        for shard in self.directory.glob("*.json"):
            shard.unlink()

    def add(self, requests: list[Request | TokenRequest], answers: list[Answer]) -> None:
        if not requests:
            return
        data = json.dumps({request_key(r): a for r, a in zip(requests, answers, strict=True)},
                          sort_keys=True).encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.directory / f"{hashlib.sha256(data).hexdigest()[:24]}.json", data)
