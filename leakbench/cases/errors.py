"""The errors of malformed case files: `CaseFileError`, one problem on one line (where, which
record, which field, what is wrong and what would be valid), and `CaseFileErrors`, every problem
of one or more files at once, one line each."""

from __future__ import annotations

from collections.abc import Sequence

MAX_SHOWN = 20  # the lines one error shows; past them, how many more there are


class CaseFileError(ValueError):
    """A malformed case file. str() is one line: where, which record, which field, what is valid."""

    def __init__(self, where: str, problem: str, *, record: str | None = None,
                 field: str | None = None):
        self.where, self.problem, self.record, self.field = where, problem, record, field
        parts = [where]
        if record is not None:
            parts.append(f"record {record}" + (f" field {field!r}" if field is not None else ""))
        parts.append(" ".join(problem.split()))
        super().__init__(_printable(": ".join(parts)))

    @property
    def errors(self) -> tuple[CaseFileError, ...]:
        """Every one-line problem this error stands for."""
        return (self,)

    def at(self, where: str) -> CaseFileError:
        """The same error, located in another place (e.g. the file whose import raised it)."""
        return CaseFileError(where, self.problem, record=self.record, field=self.field)


class CaseFileErrors(CaseFileError):
    """Several problems, of one file or of several: str() is one line per problem, the first
    `MAX_SHOWN` of them, then how many more there are. Its where, record and field are those of
    the first problem."""

    def __init__(self, errors: Sequence[CaseFileError]):
        first = errors[0]
        super().__init__(first.where, first.problem, record=first.record, field=first.field)
        self._errors = tuple(errors)
        lines = [str(error) for error in self._errors[:MAX_SHOWN]]
        if len(self._errors) > MAX_SHOWN:
            lines.append(f"... and {len(self._errors) - MAX_SHOWN} more")
        self.args = ("\n".join(lines),)

    @property
    def errors(self) -> tuple[CaseFileError, ...]:
        return self._errors

    def at(self, where: str) -> CaseFileErrors:
        return CaseFileErrors([error.at(where) for error in self._errors])


def all_of(errors: Sequence[CaseFileError]) -> CaseFileError:
    """One error for all of `errors` (a non-empty list): the error itself when there is one."""
    flat = [one for error in errors for one in error.errors]
    return flat[0] if len(flat) == 1 else CaseFileErrors(flat)


def _printable(text: str) -> str:
    """`text` with every unprintable character escaped: a newline in a file name, a terminal
    escape in an exception's text, an unpaired surrogate from an undecodable file name."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)
