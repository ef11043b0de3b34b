"""How values are hidden in what LeakBench prints: the mask that stands for a value in a message
(`redact`), and the views of a text in which `leakbench.redaction` finds where a value is
written, to mask it there.

A view normalizes a whole text as one way of writing values does (`leakbench.normalization`)
and keeps, for each normalized character, where in the text it came from."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MASK = "…"
REVEALED_FROM = 8  # a value of this many characters or more shows its first and last one


def redact(secret: str) -> str:
    """A value as messages and reports show it: its first and last character around "…" when it
    has at least 8 characters ("M…u" for "Michael Liu"), else "…" alone. It reveals at most two
    characters and at most a quarter of the value, so even a short name, a date of birth or an
    IPv4 address keeps most of itself hidden."""
    return f"{secret[0]}{MASK}{secret[-1]}" if len(secret) >= REVEALED_FROM else MASK


_PERCENT_ESCAPE = re.compile(r"%[0-7][0-9A-Fa-f]")  # an ASCII character, URL-encoded


@dataclass(frozen=True)
class TextView:
    """A whole text normalized as a form normalizes its values, each normalized character with
    the index in the text it came from: where a value is written, so that it can be masked
    (`leakbench.redaction`). `text` gives the normalized text alone, as `normalize` would: most
    texts hold no value, and theirs need no positions."""

    normalize: Callable[[str], tuple[str, list[int]]]
    text: Callable[[str], str]


def _mapped(text: str, keep: Callable[[str], str]) -> tuple[str, list[int]]:
    """`keep(char)` for every character of the text, joined, with where each one came from."""
    chars, where = [], []
    for index, char in enumerate(text):
        kept = keep(char)
        chars.append(kept)
        where.extend([index] * len(kept))
    return "".join(chars), where


class _KeptTable(dict):
    """`str.translate`'s table of a rule applied to each character alone, filled as characters
    are met: a text whose characters were all seen before is mapped without a Python call."""

    def __init__(self, keep: Callable[[str], str]) -> None:
        super().__init__()
        self.keep = keep

    def __missing__(self, code: int) -> str:
        kept = self[code] = self.keep(chr(code))
        return kept


def _per_character(keep: Callable[[str], str]) -> TextView:
    """The view that writes each character of a text as `keep(char)`."""
    table = _KeptTable(keep)
    return TextView(lambda text: _mapped(text, keep), lambda text: text.translate(table))


def _whole(normalize: Callable[[str], tuple[str, list[int]]]) -> TextView:
    """A view whose normalized text comes only with its positions."""
    return TextView(normalize, lambda text: normalize(text)[0])


def percent_decoded(text: str) -> tuple[str, list[int]]:
    """`text` with each URL-encoded ASCII character ("%40") decoded ("@"), each character with
    where it came from (a decoded one: its "%")."""
    chars, where, position = [], [], 0
    for escape in _PERCENT_ESCAPE.finditer(text):
        chars += [*text[position:escape.start()], chr(int(escape.group()[1:], 16))]
        where += [*range(position, escape.start()), escape.start()]
        position = escape.end()
    return "".join(chars) + text[position:], where + list(range(position, len(text)))


def _decoded(text: str) -> str:
    """`percent_decoded(text)`'s text alone."""
    return _PERCENT_ESCAPE.sub(lambda escape: chr(int(escape.group()[1:], 16)), text)


def _after_decoding(view: TextView) -> TextView:
    """`view` of the text with its URL-encoded characters decoded."""
    def normalize(text: str) -> tuple[str, list[int]]:
        decoded, where = percent_decoded(text)
        normalized, kept = view.normalize(decoded)
        return normalized, [where[i] for i in kept]
    return TextView(normalize, lambda text: view.text(_decoded(text)))


def _words_view(text: str) -> tuple[str, list[int]]:
    """Casefolded letters and digits, every run of other characters one space."""
    chars: list[str] = []
    where: list[int] = []
    for index, char in enumerate(text):
        for folded in char.casefold():
            if folded.isalnum():
                chars.append(folded)
                where.append(index)
            elif chars and chars[-1] != " ":
                chars.append(" ")
                where.append(index)
    return "".join(chars), where


def _ip_view(text: str) -> tuple[str, list[int]]:
    """The text without whitespace and without the leading zeros of its numbers."""
    chars, where = [], []
    for index, char in enumerate(text):
        leading_zero = (char == "0" and text[index + 1:index + 2].isdecimal()
                        and not (chars and chars[-1].isdecimal()))
        if not (char.isspace() or leading_zero):
            chars.append(char)
            where.append(index)
    return "".join(chars), where


_NUMBER_SEPARATORS = frozenset(" ./()-")
_ALNUM_UPPER_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")

# The views mask more generously than the judges find: digits across any separators, values
# inside longer ones (an email in a longer address, an IP in a longer one).
DIGITS_VIEW = _per_character(lambda c: c if c.isdecimal() else
                             "" if c in _NUMBER_SEPARATORS or c.isspace() else "|")
COMPACT_VIEW = _per_character(lambda c: "" if c.isspace() else c)
DECODED_COMPACT_VIEW = _after_decoding(COMPACT_VIEW)
UPPER_COMPACT_VIEW = _per_character(lambda c: "" if c.isspace() else c.upper())
ALNUM_UPPER_VIEW = _per_character(
    lambda c: "".join(u for u in c.upper() if u in _ALNUM_UPPER_CHARS))
EMAIL_VIEW = _per_character(lambda c: "" if c.isspace() else c.casefold())
DECODED_EMAIL_VIEW = _after_decoding(EMAIL_VIEW)
WORDS_VIEW = _whole(_words_view)
IP_VIEW = _whole(_ip_view)
