"""One record of a case file, validated into a `Sample`: its fields, the limits on its size and
nesting, and the token-boundary rule for its prompts and secret (the package docstring says
why). `leak_case` builds a record from Python and validates it the same way."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from leakbench.cases.errors import CaseFileError
from leakbench.cases.samples import DEFAULT_CONTEXT, KINDS, STYLES, Probe, Sample

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONTRACTION = re.compile(r"(?i)(?:s|t|re|ve|m|ll|d)")
_REQUIRED = ("id", "owner", "kind", "text", "secret")
_OPTIONAL = ("owner_name", "context", "span", "owner_values", "probes")
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
    """Validates one record; every error names `where`, the record and the field."""

    def __init__(self, where: str, position: str):
        self.where = where
        self.record = position  # replaced by the record's id once that is known to be valid

    def fail(self, field: str | None, problem: str) -> CaseFileError:
        return CaseFileError(self.where, problem, record=self.record, field=field)

    def string(self, record: dict, name: str, *, default: str | None = None) -> str:
        value = record.get(name, default)
        if not isinstance(value, str):
            raise self.fail(name, f"is {type(value).__name__} {value!r:.40}, expected a string")
        if not value.strip():
            raise self.fail(name, "is empty, expected a non-empty string")
        if not _is_unicode(value):
            raise self.fail(name, f"{value!r:.60} holds an unpaired surrogate, which no text "
                                  "encoding can write; expected Unicode text")
        return value

    def shape(self, record: object) -> None:
        """Refuse a record nested or sized beyond the limits before anything formats it."""
        chars, pending = 0, [(record, 1)]
        while pending:
            value, level = pending.pop()
            if isinstance(value, str):
                chars += len(value)
            elif isinstance(value, (dict, list, tuple)):
                if level > MAX_NESTING:
                    raise self.fail(None, TOO_DEEP)
                items = [*value, *value.values()] if isinstance(value, dict) else value
                pending.extend((item, level + 1) for item in items)
        if chars > MAX_RECORD_CHARS:
            raise self.fail(None, f"holds {chars} characters of strings; a record may hold at "
                                  f"most {MAX_RECORD_CHARS}")

    def sample(self, record: object) -> Sample:
        self.shape(record)
        if not isinstance(record, dict):
            raise self.fail(None, f"is {type(record).__name__}, expected an object with "
                                  f"fields {', '.join(_REQUIRED + _OPTIONAL)}")
        not_strings = [key for key in record if not isinstance(key, str)]  # YAML: 1, null, dates
        if not_strings:
            raise self.fail(None, f"has the key {not_strings[0]!r:.40}, which is not a field "
                                  f"name; valid fields: {', '.join(_REQUIRED + _OPTIONAL)}")
        sample_id = self.string(record, "id") if "id" in record else None
        if sample_id is not None:
            if not _ID.fullmatch(sample_id):
                raise self.fail("id", f"{sample_id!r:.60} is not a valid id; use letters, "
                                      "digits, '.', '_' and '-', starting with a letter or digit")
            self.record = repr(sample_id)
        unknown = sorted(set(record) - set(_REQUIRED + _OPTIONAL))
        if unknown:
            raise self.fail(unknown[0], "is not a known field; valid fields: "
                                        + ", ".join(_REQUIRED + _OPTIONAL))
        missing = [name for name in _REQUIRED if name not in record]
        if missing:
            raise self.fail(missing[0], "is missing (required: " + ", ".join(_REQUIRED) + ")")
        owner = self.string(record, "owner")
        kind = self.string(record, "kind")
        if kind not in KINDS:
            raise self.fail("kind", f"{kind!r:.40} is not a known kind; valid: {', '.join(KINDS)}")
        text = self.string(record, "text")
        secret = self.string(record, "secret")
        if not secret[0].isalnum():
            raise self.fail("secret", f"starts with {secret[0]!r}; a secret must start with a "
                                      "letter or digit so that a prompt can end at a token "
                                      "boundary before it")
        span = self.span(record.get("span"), text, secret)
        return Sample(
            id=sample_id,
            owner=owner,
            owner_name=self.string(record, "owner_name", default=owner),
            kind=kind,
            context=self.string(record, "context", default=DEFAULT_CONTEXT),
            text=text,
            secret=secret,
            span=span,
            owner_values=self.owner_values(record.get("owner_values", {}), kind),
            probes=self.probes(record.get("probes", []), text[: span[0]], secret),
        )

    def span(self, span: object, text: str, secret: str) -> tuple[int, int]:
        if span is None:
            start = text.find(secret)
            if start < 0:
                raise self.fail("secret", "does not occur in text")
            return start, start + len(secret)
        if (not isinstance(span, (list, tuple)) or len(span) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in span)):
            raise self.fail("span", f"is {span!r:.40}, expected [start, end] (two integers)")
        start, end = span
        if text[start:end] != secret or not 0 <= start < end <= len(text):
            raise self.fail("span", f"text[{start}:{end}] is {text[start:end]!r:.40}, not the "
                                    "secret")
        if secret in text[:start]:
            raise self.fail("span", "points past an earlier occurrence of the secret; point it at "
                                    "the first one")
        return start, end

    def owner_values(self, values: object, kind: str) -> dict[str, str]:
        if not isinstance(values, dict):
            raise self.fail("owner_values", f"is {type(values).__name__}, expected an object "
                                            "mapping kinds to values")
        for value_kind, value in values.items():
            if value_kind not in KINDS:
                raise self.fail("owner_values", f"key {value_kind!r:.40} is not a known kind; "
                                                f"valid: {', '.join(KINDS)}")
            if value_kind == kind:
                raise self.fail("owner_values", f"holds the sample's own kind {kind!r}; it lists "
                                                "the owner's other values")
            if not isinstance(value, str) or not value.strip() or not _is_unicode(value):
                raise self.fail("owner_values", f"value of {value_kind!r} is {value!r:.40}, "
                                                "expected a non-empty string of Unicode text")
        return dict(values)

    def probes(self, probes: object, direct_prompt: str, secret: str) -> tuple[Probe, ...]:
        if not isinstance(probes, list):
            raise self.fail("probes", f"is {type(probes).__name__}, expected a list of "
                                      "{id, style, prompt} objects")
        problem = token_boundary_problem(direct_prompt, secret)
        if problem:
            raise self.fail("span", f"the text before the secret {problem}")
        parsed = [Probe("direct", "direct", direct_prompt)]
        for i, probe in enumerate(probes):
            label = f"probes[{i}]"
            if not isinstance(probe, dict) or set(probe) != set(_PROBE_FIELDS):
                raise self.fail(label, f"is {probe!r:.40}, expected an object with exactly the "
                                       f"fields {', '.join(_PROBE_FIELDS)}")
            probe_id = self.string(probe, "id")
            style = self.string(probe, "style")
            prompt = self.string(probe, "prompt")
            if style not in STYLES:
                raise self.fail(label, f"style {style!r:.40} is not one of {', '.join(STYLES)}")
            if style == "direct":
                if probe_id != "direct" or prompt != direct_prompt:
                    raise self.fail(label, "a direct probe has id 'direct' and the text before "
                                           "the secret as its prompt (or leave it out: it is "
                                           "derived)")
                continue
            if any(p.id == probe_id for p in parsed):
                raise self.fail(label, f"id {probe_id!r:.40} is used twice in this record")
            if secret in prompt:
                raise self.fail(label, "prompt already contains the secret")
            problem = token_boundary_problem(prompt, secret)
            if problem:
                raise self.fail(label, f"prompt {problem}")
            parsed.append(Probe(probe_id, style, prompt))
        return tuple(parsed)


def parse_record(record: object, where: str, position: str) -> Sample:
    """Validate one record (a dict in the schema above); `position` names it until its id is
    known (e.g. "#3")."""
    return _RecordChecker(where, position).sample(record)


def leak_case(*, id: str, owner: str, kind: str, text: str, secret: str,
              probes: Iterable[str] = (), span: tuple[int, int] | None = None,
              owner_name: str | None = None, context: str = DEFAULT_CONTEXT,
              owner_values: Mapping[str, str] | None = None) -> Sample:
    """One leak case for a ``LEAK_CASES`` list in a ``cases/*.py`` file.

    `span` defaults to the first occurrence of `secret` in `text`; the direct probe (the text up
    to the secret) is always derived; `probes` are extra prompts, each ending where the secret
    would start (ids "para-0", "para-1", ...).
    """
    probes = list(probes)
    for i, prompt in enumerate(probes):
        if not isinstance(prompt, str):
            raise CaseFileError("leak_case()", f"probes[{i}] is {type(prompt).__name__}, expected "
                                               "a prompt string", record=repr(id), field="probes")
    record = {"id": id, "owner": owner, "kind": kind, "text": text, "secret": secret,
              "owner_name": owner if owner_name is None else owner_name, "context": context,
              "owner_values": dict(owner_values or {}),
              "probes": [{"id": f"para-{i}", "style": "paraphrase", "prompt": p}
                         for i, p in enumerate(probes)]}
    if span is not None:
        record["span"] = span
    return parse_record(record, "leak_case()", "#1")
