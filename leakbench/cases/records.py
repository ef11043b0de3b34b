"""One record of a case file, validated into a `Sample`: its fields, the limits on its size and
nesting, and its secret's kind (`leakbench.cases.kinds`). Every problem of a record is reported,
one error per problem. `leak_case` builds a record from Python and validates it the same way.

A prompt may end on any character: one that does not end on a token boundary of the served model
is healed when it is asked (leakbench.healing). `token_boundary_problem` is the rule the generated
forget and holdout sets keep (scripts/generate_cases.py): their prompts need no healing on the
built-in models."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from leakbench.cases.errors import CaseFileError, all_of
from leakbench.cases.kinds import kind_problem
from leakbench.cases.samples import DEFAULT_CONTEXT, KINDS, STYLES, Probe, Sample

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONTRACTION = re.compile(r"(?i)(?:s|t|re|ve|m|ll|d)")
_REQUIRED = ("id", "owner", "kind", "text", "secret")
_OPTIONAL = ("owner_name", "context", "span", "owner_values", "probes", "kind_check")
_PROBE_FIELDS = ("id", "style", "prompt")

MAX_RECORD_CHARS = 64 * 1024  # the characters of a record's strings, keys and values together
MAX_NESTING = 20  # lists and objects inside one another in a record; a valid one needs 3
TOO_DEEP = (f"nests lists and objects more than {MAX_NESTING} levels deep; a record needs 3 "
            "(record, probes, probe)")


def token_boundary_problem(prompt: str, secret: str) -> str | None:
    """Why a model given `prompt` cannot continue with `secret` from a token boundary, or None."""
    if not prompt:
        return "is empty; the secret needs some text before it"
    last = prompt[-1]
    if last.isalnum() or last == "_" or last.isspace():
        return (f"ends with {last!r}; a prompt must end on punctuation such as '\"', '=', ':', "
                "'<' or '(' right before the secret (token boundary)")
    if last == "'" and _CONTRACTION.match(secret):
        return (f"ends with \"'\" before a secret starting with {secret[:2]!r}, which a BPE "
                "pre-tokenizer merges into a contraction; end on another character")
    return None


def _is_unicode(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (JSON's \\ud800 escape reads as a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _RecordChecker:
    """Validates one record, collecting every problem in `errors`; each names `where`, the
    record and the field the user wrote. A check whose field is wrong returns None, and checks
    that need that field are skipped."""

    def __init__(self, where: str, position: str):
        self.where = where
        self.record = position  # replaced by the record's id once that is known to be valid
        self.errors: list[CaseFileError] = []

    def fail(self, field: str | None, problem: str) -> None:
        self.errors.append(CaseFileError(self.where, problem, record=self.record, field=field))

    def string(self, record: dict, name: str, *, default: str | None = None,
               label: str | None = None) -> str | None:
        value = record.get(name, default)
        label = label or name
        if not isinstance(value, str):
            return self.fail(label, f"is {type(value).__name__} {value!r:.40}, expected a string")
        if not value.strip():
            return self.fail(label, "is empty, expected a non-empty string")
        if not _is_unicode(value):
            return self.fail(label, f"{value!r:.60} holds an unpaired surrogate, which no text "
                                    "encoding can write; expected Unicode text")
        return value

    def within_limits(self, record: object) -> bool:
        """Whether the record is nested and sized within the limits; nothing else is checked
        (or formatted) past them."""
        chars, pending = 0, [(record, 1)]
        while pending:
            value, level = pending.pop()
            if isinstance(value, str):
                chars += len(value)
            elif isinstance(value, (dict, list, tuple)):
                if level > MAX_NESTING:
                    self.fail(None, TOO_DEEP)
                    return False
                items = [*value, *value.values()] if isinstance(value, dict) else value
                pending.extend((item, level + 1) for item in items)
        if chars > MAX_RECORD_CHARS:
            self.fail(None, f"holds {chars} characters of strings; a record may hold at most "
                            f"{MAX_RECORD_CHARS}; split the text")
            return False
        return True

    def sample(self, record: object) -> Sample | None:
        if not self.within_limits(record):
            return None
        if not isinstance(record, dict):
            return self.fail(None, f"is {type(record).__name__}, expected an object with "
                                   f"fields {', '.join(_REQUIRED + _OPTIONAL)}")
        not_strings = [key for key in record if not isinstance(key, str)]  # YAML: 1, null, dates
        for key in not_strings:
            self.fail(None, f"has the key {key!r:.40}, which is not a field name; valid fields: "
                            f"{', '.join(_REQUIRED + _OPTIONAL)}")
        if not_strings:
            return None
        sample_id = self.identifier(record)
        for name in sorted(set(record) - set(_REQUIRED + _OPTIONAL)):
            self.fail(name, "is not a known field; valid fields: " + ", ".join(_REQUIRED
                                                                             + _OPTIONAL))
        for name in _REQUIRED:
            if name not in record:
                self.fail(name, "is missing (required: " + ", ".join(_REQUIRED) + ")")
        present = {name: self.string(record, name) for name in _REQUIRED[1:] if name in record}
        owner, kind, text, secret = (present.get(name) for name in _REQUIRED[1:])
        if kind is not None and kind not in KINDS:
            self.fail("kind", f"{kind!r:.40} is not a known kind; valid: {', '.join(KINDS)}")
            kind = None
        kind_check = record.get("kind_check", True)
        if not isinstance(kind_check, bool):
            self.fail("kind_check", f"is {type(kind_check).__name__} {kind_check!r:.40}, "
                                    "expected true or false")
        if secret is not None:
            self.secret(secret, kind if kind_check is True else None)
        span = self.span(record, text, secret) if text and secret else None
        owner_name = self.string(record, "owner_name", default=owner) if (
            owner is not None or "owner_name" in record) else None
        context = self.string(record, "context", default=DEFAULT_CONTEXT)
        owner_values = self.owner_values(record.get("owner_values", {}), kind)
        probes = self.probes(record, text[: span[0]] if span else None, secret)
        if self.errors:
            return None
        return Sample(id=sample_id, owner=owner, owner_name=owner_name, kind=kind,
                      context=context, text=text, secret=secret, span=span,
                      owner_values=owner_values, probes=probes, kind_check=kind_check)

    def identifier(self, record: dict) -> str | None:
        if "id" not in record:
            return None
        sample_id = self.string(record, "id")
        if sample_id is not None and not _ID.fullmatch(sample_id):
            return self.fail("id", f"{sample_id!r:.60} is not a valid id; use letters, digits, "
                                   "'.', '_' and '-', starting with a letter or digit")
        if sample_id is not None:
            self.record = repr(sample_id)
        return sample_id

    def secret(self, secret: str, kind: str | None) -> None:
        """Whether the secret is a value without space around it, and looks like a value of
        `kind` (None: not checked). It may start with any other character: a prompt that ends
        inside a token is healed (leakbench.healing)."""
        if secret != secret.strip():
            self.fail("secret", "starts or ends with whitespace; the whitespace belongs to the "
                                "text around the secret: leave it out")
            return
        problem = kind_problem(secret, kind) if kind is not None else None
        if problem:
            self.fail("secret", problem)

    def span(self, record: dict, text: str, secret: str) -> tuple[int, int] | None:
        span = record.get("span")
        if span is None:
            start = text.find(secret)
            if start < 0:
                return self.fail("secret", "does not occur in text; copy it from the text")
            return start, start + len(secret)
        if (not isinstance(span, (list, tuple)) or len(span) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in span)):
            return self.fail("span", f"is {span!r:.40}, expected [start, end] (two integers), "
                                     "or leave it out for the first occurrence of the secret")
        start, end = span
        if text[start:end] != secret or not 0 <= start < end <= len(text):
            found = text.find(secret)
            fix = f"; the secret is at [{found}, {found + len(secret)}]" if found >= 0 else ""
            return self.fail("span", f"text[{start}:{end}] is {text[start:end]!r:.40}, not the "
                                     f"secret{fix}")
        if secret in text[:start]:
            return self.fail("span", "points past an earlier occurrence of the secret; point "
                                     "it at the first one")
        return start, end

    def owner_values(self, values: object, kind: str | None) -> dict[str, str] | None:
        if not isinstance(values, dict):
            return self.fail("owner_values", f"is {type(values).__name__}, expected an object "
                                             "mapping kinds to values")
        errors = len(self.errors)
        for value_kind, value in values.items():
            if value_kind not in KINDS:
                self.fail("owner_values", f"key {value_kind!r:.40} is not a known kind; valid: "
                                          f"{', '.join(KINDS)}")
            elif value_kind == kind:
                self.fail("owner_values", f"holds the sample's own kind {kind!r}; it lists the "
                                          "owner's other values")
            if not isinstance(value, str) or not value.strip() or not _is_unicode(value):
                self.fail("owner_values", f"value of {value_kind!r:.40} is {value!r:.40}, "
                                          "expected a non-empty string of Unicode text")
        return dict(values) if len(self.errors) == errors else None

    def probes(self, record: dict, direct_prompt: str | None, secret: str | None
               ) -> tuple[Probe, ...] | None:
        probes = record.get("probes", [])
        if not isinstance(probes, list):
            return self.fail("probes", f"is {type(probes).__name__}, expected a list of "
                                       "{id, style, prompt} objects")
        parsed: list[Probe] = []
        if direct_prompt == "":
            # The text before the secret is the user's text, or where their span cut it.
            self.fail("span" if "span" in record else "text", "the text before the secret is "
                      "empty; the secret needs some text before it, which the probe asks with")
        elif direct_prompt is not None:
            parsed.append(Probe("direct", "direct", direct_prompt))
        errors = len(self.errors)
        for i, probe in enumerate(probes):
            checked = self.probe(f"probes[{i}]", probe, direct_prompt, secret, parsed)
            if checked is not None and checked.style != "direct":
                parsed.append(checked)
        return tuple(parsed) if len(self.errors) == errors and direct_prompt is not None else None

    def probe(self, label: str, probe: object, direct_prompt: str | None, secret: str | None,
              parsed: list[Probe]) -> Probe | None:
        if not isinstance(probe, dict) or set(probe) != set(_PROBE_FIELDS):
            return self.fail(label, f"is {probe!r:.40}, expected an object with exactly the "
                                    f"fields {', '.join(_PROBE_FIELDS)}")
        fields = [self.string(probe, name, label=f"{label}.{name}") for name in _PROBE_FIELDS]
        if None in fields:
            return None
        probe_id, style, prompt = fields
        if style not in STYLES:
            return self.fail(label, f"style {style!r:.40} is not one of {', '.join(STYLES)}")
        if style == "direct":
            if probe_id != "direct" or (direct_prompt is not None and prompt != direct_prompt):
                return self.fail(label, "a direct probe has id 'direct' and the text before the "
                                        "secret as its prompt (or leave it out: it is derived)")
            return Probe(probe_id, style, prompt)
        if any(p.id == probe_id for p in parsed):
            return self.fail(label, f"id {probe_id!r:.40} is used twice in this record")
        if secret is None:
            return Probe(probe_id, style, prompt)
        if secret in prompt:
            return self.fail(label, "prompt already contains the secret; end it where the "
                                    "secret would start")
        return Probe(probe_id, style, prompt)


def check_record(record: object, where: str, position: str
                 ) -> tuple[Sample | None, list[CaseFileError]]:
    """Validate one record: its sample, or None and every problem found. `position` names the
    record until its id is known (e.g. "#3")."""
    checker = _RecordChecker(where, position)
    sample = checker.sample(record)
    return sample, checker.errors


def parse_record(record: object, where: str, position: str) -> Sample:
    """Validate one record (a dict in the schema above), raising every problem at once."""
    sample, errors = check_record(record, where, position)
    if errors:
        raise all_of(errors)
    return sample


# While a case module is imported, its loader collects the problems of each leak_case call here
# instead of the call raising at the first bad case, so that one load reports them all.
_COLLECTOR: ContextVar[Callable[[list[CaseFileError]], None] | None] = ContextVar(
    "leak_case_collector", default=None)
REJECTED = object()  # what leak_case returns for a bad case while its problems are collected


@contextmanager
def collecting_rejections(collect: Callable[[list[CaseFileError]], None]) -> Iterator[None]:
    """Within this block, a leak_case call with problems passes them to `collect` and returns
    `REJECTED` instead of raising them."""
    token = _COLLECTOR.set(collect)
    try:
        yield
    finally:
        _COLLECTOR.reset(token)


def leak_case(*, id: str, owner: str, kind: str, text: str, secret: str,
              probes: Iterable[str] = (), span: tuple[int, int] | None = None,
              owner_name: str | None = None, context: str = DEFAULT_CONTEXT,
              owner_values: Mapping[str, str] | None = None, kind_check: bool = True) -> Sample:
    """One leak case for a ``LEAK_CASES`` list in a ``cases/*.py`` file.

    `span` defaults to the first occurrence of `secret` in `text`; the direct probe (the text up
    to the secret) is always derived; `probes` are extra prompts, each ending where the secret
    would start (ids "para-0", "para-1", ...). `kind_check=False` accepts a secret that does not
    look like a value of its kind. Every problem of the case is raised at once; while its case
    file is loaded, they are reported with those of the file's other cases instead.
    """
    probes = list(probes)
    errors = [CaseFileError("leak_case()", f"probes[{i}] is {type(prompt).__name__}, expected "
                                           "a prompt string", record=repr(id), field="probes")
              for i, prompt in enumerate(probes) if not isinstance(prompt, str)]
    record = {"id": id, "owner": owner, "kind": kind, "text": text, "secret": secret,
              "owner_name": owner if owner_name is None else owner_name, "context": context,
              "owner_values": dict(owner_values or {}), "kind_check": kind_check,
              "probes": [{"id": f"para-{i}", "style": "paraphrase", "prompt": p}
                         for i, p in enumerate(probes) if isinstance(p, str)]}
    if span is not None:
        record["span"] = span
    sample, problems = check_record(record, "leak_case()", "#1")
    errors += problems
    if not errors:
        return sample
    collect = _COLLECTOR.get()
    if collect is None:
        raise all_of(errors)
    collect(errors)
    return REJECTED
