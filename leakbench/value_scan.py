"""Which privacy values a published text shows: the check behind every "no secret in what a run
prints or writes" test and bench/secrets_in_outputs.py.

A plain substring search misses a value once a format has escaped it, and the formats a run writes
all escape something: results.json writes a quote as ``\\"`` and any non-ASCII character as
``\\uXXXX``, results.html and the junit XML write ``&`` as ``&amp;``, results.csv doubles a quote,
and a failure message may quote a string's repr (``\\\\`` for a backslash). Dozens of the forget
set's values hold an ``&``, and a user's case may hold any character. So `ValueScan` searches
the text as written and as it reads through each of these escapes, and through two nested ones (a
repr inside the junit XML, a repr inside a JSON string).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path

from leakbench.cases import Sample

_BACKSLASH_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[\"'\\/bfnrt])")
_CONTROL_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def published_values(samples: Iterable[Sample], min_length: int = 6) -> set[str]:
    """The values no run may publish without --show-secrets: each sample's secret and its owner's
    other values, those of at least `min_length` characters (shorter ones occur in any text)."""
    values = set()
    for sample in samples:
        values.add(sample.secret)
        values.update(sample.owner_values.values())
    return {value for value in values if len(value) >= min_length}


def _unescape_backslashes(text: str) -> str:
    """`text` with JSON's and Python's backslash escapes undone; a JSON surrogate pair becomes
    its one character."""
    def replace(match: re.Match) -> str:
        code = match.group(1)
        if code[0] in "uUx":
            return chr(int(code[1:], 16))
        return _CONTROL_ESCAPES.get(code, code)

    unescaped = _BACKSLASH_ESCAPE.sub(replace, text)
    return unescaped.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def readings(text: str) -> list[str]:
    """`text` as written and as it reads through the escapes of JSON and Python strings, of HTML
    and XML, of CSV, and of a string escape inside another (each reading once)."""
    references_undone = html.unescape(text)
    backslashes_undone = _unescape_backslashes(text)
    candidates = (text, references_undone, backslashes_undone,
                  _unescape_backslashes(backslashes_undone),
                  _unescape_backslashes(references_undone), text.replace('""', '"'))
    return list(dict.fromkeys(candidates))


def _trie_pattern(values: Iterable[str]) -> str:
    """A regular expression that matches any of `values`, the longest where several start at one
    place, written as the trie of their characters: at each place of a text the engine follows
    one character at a time instead of trying every value in turn, which a plain alternation of
    thousands of values does (too slow for a whole run's reports)."""
    trie: dict = {}
    for value in values:
        node = trie
        for char in value:
            node = node.setdefault(char, {})
        node[""] = {}  # a value ends here

    def pattern(node: dict) -> str:
        branches = [re.escape(char) + pattern(child) for char, child in node.items() if char]
        if not branches:
            return ""
        either = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return f"(?:{either})?" if "" in node else either

    return pattern(trie)


class ValueScan:
    """One regular expression over `values`, searched through every reading of a text."""

    def __init__(self, values: Iterable[str]) -> None:
        unique = set(values)
        if not unique or "" in unique:
            raise ValueError("a value scan needs at least one value, and no empty one")
        self._pattern = re.compile(_trie_pattern(sorted(unique)))
        self.count = len(unique)

    def found(self, text: str) -> list[str]:
        """The values that `text` shows, in any reading, sorted."""
        return sorted({value for reading in readings(text)
                       for value in self._pattern.findall(reading)})

    def found_in_file(self, path: Path) -> list[str]:
        """The values that the file at `path` shows, its bytes read as UTF-8 (a byte that is not
        UTF-8 is no character of a value)."""
        return self.found(Path(path).read_bytes().decode("utf-8", "replace"))
