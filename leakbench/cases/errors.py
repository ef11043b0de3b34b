"""The error of a malformed case file, whose text is one line: where, which record, which field,
and what would be valid."""

from __future__ import annotations


class CaseFileError(ValueError):
    """A malformed case file. str() is one line: where, which record, which field, what is valid."""

    def __init__(self, where: str, problem: str, *, record: str | None = None,
                 field: str | None = None):
        self.where, self.problem, self.record, self.field = where, problem, record, field
        parts = [where]
        if record is not None:
            parts.append(f"record {record}" + (f" field {field!r}" if field else ""))
        parts.append(" ".join(problem.split()))
        super().__init__(_printable(": ".join(parts)))

    def at(self, where: str) -> CaseFileError:
        """The same error, located in another place (e.g. the file whose import raised it)."""
        return CaseFileError(where, self.problem, record=self.record, field=self.field)


def _printable(text: str) -> str:
    """`text` with every unprintable character escaped: a newline in a file name, a terminal
    escape in an exception's text, an unpaired surrogate from an undecodable file name."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)
