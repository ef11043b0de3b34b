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
    (`leakbench.redaction`). With `whole_words` the view starts and ends with a space, and a
    value counts only as ``f" {value} "``."""

    normalize: Callable[[str], tuple[str, list[int]]]
    whole_words: bool = False


def _mapped(text: str, keep: Callable[[str], str]) -> tuple[str, list[int]]:
    """`keep(char)` for every character of the text, joined, with where each one came from."""
    chars, where = [], []
    for index, char in enumerate(text):
        kept = keep(char)
        chars.append(kept)
        where.extend([index] * len(kept))
    return "".join(chars), where


def percent_decoded(text: str) -> tuple[str, list[int]]:
    """`text` with each URL-encoded ASCII character ("%40") decoded ("@"), each character with
    where it came from (a decoded one: its "%")."""
    chars, where, position = [], [], 0
    for escape in _PERCENT_ESCAPE.finditer(text):
        chars += [*text[position:escape.start()], chr(int(escape.group()[1:], 16))]
        where += [*range(position, escape.start()), escape.start()]
        position = escape.end()
    return "".join(chars) + text[position:], where + list(range(position, len(text)))


def _compact_view(text: str) -> tuple[str, list[int]]:
    return _mapped(text, lambda c: "" if c.isspace() else c)


def _email_view(text: str) -> tuple[str, list[int]]:
    return _mapped(text, lambda c: "" if c.isspace() else c.casefold())


def _after_decoding(view: Callable[[str], tuple[str, list[int]]]
                    ) -> Callable[[str], tuple[str, list[int]]]:
    """`view` of the text with its URL-encoded characters decoded."""
    def decoded_view(text: str) -> tuple[str, list[int]]:
        decoded, where = percent_decoded(text)
        normalized, kept = view(decoded)
        return normalized, [where[i] for i in kept]
    return decoded_view


def _words_view(text: str) -> tuple[str, list[int]]:
    """Casefolded letters and digits, every run of other characters one space, padded."""
    chars, where = [" "], [-1]
    for index, char in enumerate(text):
        for folded in char.casefold():
            if folded.isalnum():
                chars.append(folded)
                where.append(index)
            elif chars[-1] != " ":
                chars.append(" ")
                where.append(index)
    if chars[-1] != " ":
        chars.append(" ")
        where.append(len(text))
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
DIGITS_VIEW = TextView(lambda t: _mapped(t, lambda c: c if c.isdecimal() else
                                         "" if c in _NUMBER_SEPARATORS or c.isspace() else "|"))
COMPACT_VIEW = TextView(_compact_view)
DECODED_COMPACT_VIEW = TextView(_after_decoding(_compact_view))
UPPER_COMPACT_VIEW = TextView(lambda t: _mapped(t, lambda c: "" if c.isspace() else c.upper()))
ALNUM_UPPER_VIEW = TextView(lambda t: _mapped(
    t, lambda c: "".join(u for u in c.upper() if u in _ALNUM_UPPER_CHARS)))
EMAIL_VIEW = TextView(_email_view)
DECODED_EMAIL_VIEW = TextView(_after_decoding(_email_view))
WORDS_VIEW = TextView(_words_view, whole_words=True)
IP_VIEW = TextView(_ip_view)

