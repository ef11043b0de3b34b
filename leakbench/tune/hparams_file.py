"""The tuned settings in algorithms/hparams.toml: one block per model family, written by the tuner.

The block holds a `[family.algorithm]` table per tuned algorithm, each headed by a comment that
names the trial it came from and what that trial measured on the tuning split. The tuner
rewrites the tables of the algorithms it tuned and keeps the block's others; everything outside
the block is the family's hand-written settings, which the tuner never edits. A hand-written
table for an algorithm the tuner would write is an error: a setting has one author.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from algorithms.hparams import HPARAMS_PATH
from leakbench.atomic import write_atomically


def _markers(family: str) -> tuple[str, str]:
    return (f"# >>> tuned for {family} by `python -m leakbench.tune --model {family} --write`",
            f"# <<< tuned for {family}")


def split_block(text: str, family: str) -> tuple[str, dict[str, str]]:
    """The file without the family's block, and the block's table texts by algorithm."""
    begin, end = _markers(family)
    if begin not in text:
        return text, {}
    before, rest = text.split(begin, 1)
    block, after = rest.split(end, 1)
    tables: dict[str, str] = {}
    for chunk in re.split(r"\n\s*\n", block.strip("\n")):  # one table per paragraph
        header = re.search(rf"^\[{re.escape(family)}\.(\w+)\]", chunk, re.MULTILINE)
        if header:
            tables[header.group(1)] = chunk.strip("\n")
    return before.rstrip("\n") + "\n" + after.lstrip("\n"), tables


def _toml_value(value: float) -> str:
    return repr(float(value))


def table(family: str, algorithm: str, settings: dict[str, float | None], provenance: str
          ) -> str:
    """One tuned table: its provenance comment, then its settings (a stop of None is left out:
    the trial ran without one, as the family does)."""
    lines = [f"# trial {provenance}", f"[{family}.{algorithm}]"]
    lines += [f"{name} = {_toml_value(value)}" for name, value in settings.items()
              if value is not None]
    return "\n".join(lines)


def write(family: str, tables: dict[str, str], path: Path = HPARAMS_PATH) -> None:
    """Put `tables` (by algorithm, from `table`) into the family's block of `path`, keeping the
    block's tables of other algorithms. The file is replaced whole, and only once it parses."""
    text = path.read_text()
    outside, kept = split_block(text, family)
    hand_written = tomllib.loads(outside).get(family, {})
    clashes = sorted(a for a in tables if isinstance(hand_written.get(a), dict))
    if clashes:
        raise ValueError(f"{path}: [{family}.{clashes[0]}] is written by hand; remove it so that "
                         "the tuner's table is the only one")
    begin, end = _markers(family)
    merged = {**kept, **tables}
    block = "\n\n".join([begin] + [merged[a] for a in sorted(merged)] + [end])
    new = outside.rstrip("\n") + "\n\n" + block + "\n"
    tomllib.loads(new)  # never write a file the loader would reject
    write_atomically(path, new)


def written(family: str, algorithm: str, path: Path = HPARAMS_PATH) -> dict[str, float] | None:
    """The settings of `algorithm`'s tuned table for `family`, or None when there is none."""
    _, tables = split_block(path.read_text(), family)
    if algorithm not in tables:
        return None
    return tomllib.loads(tables[algorithm])[family][algorithm]
