"""Replace one `## heading` section of a Markdown file, keeping the others: bench scripts and
result commands each own a section of docs/PERFORMANCE.md or docs/RESULTS.md."""

from __future__ import annotations

import re
from pathlib import Path

from leakbench.atomic import write_atomically


def write_section(path: Path, heading: str, body: str) -> None:
    title = path.stem.title()
    text = path.read_text() if path.exists() else f"# {title}\n"
    block = f"## {heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + block
    write_atomically(path, text)
