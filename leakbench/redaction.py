"""What a run prints or publishes about a test: its secrets masked, control characters escaped.

A benchmark test's failure message is printed, written to the junit XML and sent from an xdist
worker to the controller. It quotes the judges' reasons and a failed program's last line, which
come from what the model wrote: an attacker's text. `Redactor.message` makes it safe to show
(and `Redactor.published` a prompt or completion that a report file holds, with its line breaks
and tabs kept):

- every value of the run's privacy data (each sample's secret, owner name and owner values, of
  the whole forget set, the samples a small model's planting leaves out included, the user's
  case files and the holdout set) is replaced by its mask
  (`leakbench.judges.redact`) wherever it stands and however it is written: values are found in
  every spelling the judges recognise (`leakbench.judges.spellings`), so a phone number with
  other separators or without its country code, a date of birth in another layout, an email in
  capitals or a token broken by whitespace or URL-encoded is masked as well. Unlike the judges,
  which count a name or an address only as whole words, the mask also covers a value that runs
  on into more letters or digits ("Jerry Walkeron" for "Jerry Walker"): such a completion shows
  the whole value all the same.
  Values of fewer than `MIN_CHARS` characters after normalization are not searched for: they
  occur in any text. With ``show_secrets`` (--show-secrets) nothing is masked;
- then every control character (C0 and C1 controls, DEL, line and paragraph separators,
  bidirectional overrides) is written as its escape (``\\x1b``, ``\\n``, ``\\u202e``), so that ANSI
  and OSC sequences reach no terminal and a one-line message stays one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from leakbench.cases import Sample
from leakbench.masks import MASK, TextView, redact
from leakbench.normalization import spellings

MIN_CHARS = 4
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str, *, keep: str = "") -> str:
    """`text` with every control character but those in `keep` written as its Python escape
    (``\\x1b[2J``)."""
    return _CONTROL.sub(lambda match: match.group() if match.group() in keep
                        else ascii(match.group())[1:-1], text)


def known_values(samples: Iterable[Sample]) -> Iterator[tuple[str, str]]:
    """(value, kind) for the secret (as the judges read it, `Sample.value`), the owner's name and
    the owner's values of each sample."""
    for sample in samples:
        yield sample.value, sample.kind
        if sample.owner_name:
            yield sample.owner_name, "name"
        for kind, value in sample.owner_values.items():
            yield value, kind


class Redactor:
    """Masks the values of a run's samples in any text; built once per run."""

    def __init__(self, samples: Iterable[Sample] = (), *, show_secrets: bool = False) -> None:
        self.show_secrets = show_secrets
        # Per view, each normalized value and the shortest value written that way.
        needles: dict[TextView, dict[str, str]] = {}
        if not show_secrets:
            for value, kind in known_values(samples):
                for view, needle in spellings(value, kind):
                    if len(needle) >= MIN_CHARS:
                        table = needles.setdefault(view, {})
                        if needle not in table or len(value) < len(table[needle]):
                            table[needle] = value
        self._published: dict[str, str] = {}  # text -> as published
        # Per view, the values by the first MIN_CHARS characters of their pattern: a text is
        # read once per view, not once per value (a run masks every completion it reports).
        self._index: dict[TextView, dict[str, list[tuple[str, int, str]]]] = {}
        for view, table in needles.items():
            index = self._index[view] = {}
            for needle, value in table.items():
                index.setdefault(needle[:MIN_CHARS], []).append((needle, len(needle), value))

    def shown(self, value: str) -> str:
        """A value as a message names it: masked, or whole with --show-secrets."""
        return value if self.show_secrets else redact(value)

    def message(self, text: str) -> str:
        """`text` as a test may show it: known values masked, control characters escaped."""
        return escape_controls(text if self.show_secrets else self.masked(text))

    def published(self, text: str) -> str:
        """`text` as a report file shows it (a probe's prompt and completion in results.json and
        results.html): known values masked unless --show-secrets; line breaks and tabs kept,
        as code needs them, every other control character escaped. Remembered: a run publishes
        each prompt once per variant and attack, and variants often answer alike."""
        if text not in self._published:
            shown = text if self.show_secrets else self.masked(text)
            self._published[text] = escape_controls(shown, keep="\n\t")
        return self._published[text]

    def masked(self, text: str) -> str:
        """`text` with each known value replaced by its mask; where several values overlap,
        the whole stretch they cover becomes "…"."""
        merged: list[tuple[int, int, str | None]] = []
        for start, end, value in sorted(self._spans(text)):
            if merged and start < merged[-1][1]:  # one value found twice keeps its mask
                kept = value if merged[-1][2] == value else None
                merged[-1] = (merged[-1][0], max(merged[-1][1], end), kept)
            else:
                merged.append((start, end, value))
        parts, position = [], 0
        for start, end, value in merged:
            parts += [text[position:start], MASK if value is None else redact(value)]
            position = end
        parts.append(text[position:])
        return "".join(parts)

    def _spans(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, value) of every place in `text` where a known value is written. A view's
        positions are worked out only for a text that holds the start of some value in it."""
        for view, index in self._index.items():
            normalized = view.text(text)
            starts = {normalized[at:at + MIN_CHARS]
                      for at in range(len(normalized) - MIN_CHARS + 1)}
            found = starts & index.keys()
            if not found:
                continue
            where = view.normalize(text)[1]
            for start in found:
                at = normalized.find(start)
                while at != -1:
                    for needle, length, value in index[start]:
                        if normalized.startswith(needle, at):
                            yield where[at], where[at + length - 1] + 1, value
                    at = normalized.find(start, at + 1)
