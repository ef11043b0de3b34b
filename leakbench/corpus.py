"""The pretraining corpus of `tiny`: the interpreter's standard library plus capability tasks.

Both are available offline on every machine. A fixed list of stdlib modules is held out of training
for the code-completion utility metric (next-token accuracy and perplexity on code never seen).
"""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

from leakbench import capability

# Small, self-contained, typical modules: held out of training, scored for code completion.
HELDOUT_MODULES = ("bisect", "colorsys", "fnmatch", "glob", "heapq", "shlex", "textwrap")


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_sources(heldout: bool) -> list[str]:
    """Source text of the top-level stdlib modules of one split, in a fixed (sorted) order."""
    files = sorted(_stdlib_dir().glob("*.py"))
    chosen = [f for f in files if (f.stem in HELDOUT_MODULES) == heldout]
    return [f.read_text(encoding="utf-8", errors="replace") for f in chosen]


def task_texts() -> list[str]:
    return [task.text for task in capability.all_tasks(heldout=False)]


def fingerprint(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()[:16]


def retain_texts(count: int, seed: int = 0) -> list[str]:
    """The retain set: code the model must keep while forgetting, disjoint from every evaluation
    set.

    Two thirds training-split capability tasks, one third function-sized chunks of the training
    stdlib modules (never the held-out modules or held-out tasks), shuffled together so that any
    slice of the list is the same mix (planting takes one slice per epoch, leakbench.plant).
    """
    import random

    rng = random.Random(seed)
    tasks = task_texts()
    chunks = [chunk for source in stdlib_sources(heldout=False) for chunk in _functions(source)]
    n_tasks = min(len(tasks), count * 2 // 3)
    texts = rng.sample(tasks, n_tasks) + rng.sample(chunks, min(len(chunks), count - n_tasks))
    rng.shuffle(texts)
    return texts


def _functions(source: str, max_chars: int = 600) -> list[str]:
    """Top-level and method definitions of a module, each cut to `max_chars` at a line end."""
    import re

    pieces = re.split(r"\n(?=(?:    )?def )", source)
    out = []
    for piece in pieces[1:]:
        piece = piece[:max_chars]
        if "\n" in piece:
            out.append(piece[: piece.rindex("\n") + 1])
    return out
