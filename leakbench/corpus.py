"""The pretraining corpus of `tiny`: the running interpreter's standard library plus capability tasks.

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
