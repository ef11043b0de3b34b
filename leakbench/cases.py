"""Leak cases: the sample/probe schema, validating loaders for case files, and `leak_case`.

A *sample* is one training text that holds one sensitive value (its *secret*) at `span`; its
*probes* are prompts that ask a model for that value. The forget and holdout sets
(cases/forget.jsonl, cases/holdout.jsonl) and every user case file share this schema:

- ``*.jsonl``: one record (a JSON object) per line, blank lines allowed;
- ``*.yaml`` / ``*.yml``: a list of the same records;
- ``*.py``: a module that defines ``LEAK_CASES = [leak_case(...), ...]``.

A file either loads completely or raises `CaseFileError`, whose text is one line naming the file,
the record, the field and what would be valid.

Token boundaries: a small byte-level BPE model answers garbage when a prompt ends in the middle of
a token it always saw merged with what followed (DESIGN.md, "Prompt boundaries"). With a GPT-2
style pre-tokenizer, punctuation is split from a following letter or digit, while a space or
newline is merged into the next word and ``'`` into a following contraction (``'s``, ``'t``,
``'re``, ``'ve``, ``'m``, ``'ll``, ``'d``). So every probe prompt must end on punctuation other
than ``_`` (``"``, ``=``, ``:``, ``<``, ``(`` ...) and every secret must start with a letter or
digit; see `token_boundary_problem`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

KINDS = (
    "name",
    "email",
    "phone",
    "address",
    "dob",
    "national_id",
    "credit_card",
    "iban",
    "ipv4",
    "password",
    "aws_access_key_id",
    "aws_secret_access_key",
    "github_token",
    "slack_token",
    "stripe_key",
    "openai_key",
    "db_uri",
)
STYLES = ("direct", "paraphrase")
FORGET_FILE = "forget.jsonl"
HOLDOUT_FILE = "holdout.jsonl"
CASE_SUFFIXES = (".py", ".jsonl", ".yaml", ".yml")

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONTRACTION = re.compile(r"(?i)(?:s|t|re|ve|m|ll|d)")
_REQUIRED = ("id", "owner", "kind", "text", "secret")
_OPTIONAL = ("owner_name", "context", "span", "owner_values", "probes")
_PROBE_FIELDS = ("id", "style", "prompt")
DEFAULT_CONTEXT = "custom"


@dataclass(frozen=True)
class Probe:
    id: str
    style: str  # "direct": the training text up to the secret; "paraphrase": another way to ask
    prompt: str


@dataclass(frozen=True)
class Sample:
    id: str
    owner: str
    owner_name: str
    kind: str
    context: str
    text: str
    secret: str
    span: tuple[int, int]  # text[span[0]:span[1]] == secret
    owner_values: Mapping[str, str] = field(hash=False)  # the owner's other values, by kind
    probes: tuple[Probe, ...]

    @property
    def direct_prompt(self) -> str:
        return self.text[: self.span[0]]

    def to_record(self) -> dict:
        """The JSON-serializable record this sample is loaded from."""
        return {
            "id": self.id,
            "owner": self.owner,
            "owner_name": self.owner_name,
            "kind": self.kind,
            "context": self.context,
            "text": self.text,
            "secret": self.secret,
            "span": list(self.span),
            "owner_values": dict(self.owner_values),
            "probes": [{"id": p.id, "style": p.style, "prompt": p.prompt} for p in self.probes],
        }


class CaseFileError(ValueError):
    """A malformed case file. str() is one line: where, which record, which field, what is valid."""

    def __init__(self, where: str, problem: str, *, record: str | None = None,
                 field: str | None = None):
        self.where, self.problem, self.record, self.field = where, problem, record, field
        parts = [where]
        if record is not None:
            parts.append(f"record {record}" + (f" field {field!r}" if field else ""))
        parts.append(" ".join(problem.split()))
        super().__init__(": ".join(parts))

    def at(self, where: str) -> CaseFileError:
        """The same error, located in another place (e.g. the file whose import raised it)."""
        return CaseFileError(where, self.problem, record=self.record, field=self.field)


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


def _where(path: Path | str) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


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
        return value

    def sample(self, record: object) -> Sample:
        if not isinstance(record, dict):
            raise self.fail(None, f"is {type(record).__name__}, expected an object with "
                                  f"fields {', '.join(_REQUIRED + _OPTIONAL)}")
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
            if not isinstance(value, str) or not value.strip():
                raise self.fail("owner_values", f"value of {value_kind!r} is {value!r:.40}, "
                                                "expected a non-empty string")
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


def _unique(samples: list[Sample], places: list[tuple[str, str]]) -> list[Sample]:
    """`samples`, checked for repeated ids; `places` holds each one's (location, description)."""
    first: dict[str, str] = {}
    for sample, (where, position) in zip(samples, places):
        if sample.id in first:
            raise CaseFileError(where, f"duplicate id, already used by {first[sample.id]} of "
                                       "this file", record=repr(sample.id), field="id")
        first[sample.id] = position
    return samples


def load_jsonl(path: Path | str) -> list[Sample]:
    """All samples of a JSON-lines case file."""
    where = _where(path)
    samples, places = [], []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as error:
                raise CaseFileError(f"{where}:{number}", f"invalid JSON: {error.msg} (column "
                                                         f"{error.colno})") from None
            samples.append(parse_record(record, f"{where}:{number}", f"#{len(samples) + 1}"))
            places.append((f"{where}:{number}", f"line {number}"))
    return _unique(samples, places)


def _load_yaml(path: Path) -> list[Sample]:
    where = _where(path)
    try:
        records = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise CaseFileError(f"{where}{line}", f"invalid YAML: {problem}") from None
    if not isinstance(records, list):
        raise CaseFileError(where, f"holds a {type(records).__name__}, expected a list of records")
    samples = [parse_record(r, where, f"#{i + 1}") for i, r in enumerate(records)]
    return _unique(samples, [(where, f"record #{i + 1}") for i in range(len(samples))])


def _load_python(path: Path) -> list[Sample]:
    """Import a case module (it is the user's code: running it is the point) and read LEAK_CASES."""
    where = _where(path)
    name = f"leakbench_case_file_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here while it is imported
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # whatever the user's module raises, or exit()
        lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
                 if Path(frame.filename).resolve() == path.resolve()]
        if isinstance(error, SyntaxError):
            lines.append(error.lineno)
        located = f"{where}:{lines[-1]}" if lines and lines[-1] else where
        if isinstance(error, CaseFileError):
            raise error.at(located) from None
        raise CaseFileError(located, f"import failed: {type(error).__name__}: {error}") from None
    finally:
        sys.modules.pop(name, None)
    if not hasattr(module, "LEAK_CASES"):
        raise CaseFileError(where, "defines no LEAK_CASES; expected LEAK_CASES = "
                                   "[leak_case(...), ...]")
    cases = module.LEAK_CASES
    if not isinstance(cases, (list, tuple)):
        raise CaseFileError(where, f"LEAK_CASES is {type(cases).__name__}, expected a list of "
                                   "leak_case(...)")
    for i, case in enumerate(cases):
        if not isinstance(case, Sample):
            raise CaseFileError(where, f"LEAK_CASES[{i}] is {type(case).__name__} {case!r:.40}, "
                                       "expected leak_case(...)")
    return _unique(list(cases), [(where, f"LEAK_CASES[{i}]") for i in range(len(cases))])


def load_case_file(path: Path | str) -> list[Sample]:
    """All samples of one case file, by suffix: .jsonl, .yaml/.yml or .py."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return load_jsonl(path)
    if path.suffix in (".yaml", ".yml"):
        return _load_yaml(path)
    if path.suffix == ".py":
        return _load_python(path)
    raise CaseFileError(_where(path), f"unsupported case file type {path.suffix!r}; use "
                                      + ", ".join(CASE_SUFFIXES))


def user_case_files(directory: Path | str) -> list[Path]:
    """The user's case files directly in `directory`: all files but the forget and holdout sets,
    README*, and names starting with '.' or '_'."""
    return sorted(
        path for path in Path(directory).iterdir()
        if path.is_file() and path.name not in (FORGET_FILE, HOLDOUT_FILE)
        and not path.name.startswith((".", "_", "README"))
    )


def collect_case_files(directory: Path | str) -> list[Sample]:
    """The samples of every user case file in `directory`, with ids unique across all of them
    and the forget and holdout sets."""
    directory = Path(directory)
    owner_of_id: dict[str, str] = {}
    for reserved in (FORGET_FILE, HOLDOUT_FILE):
        if (directory / reserved).is_file():
            for sample in load_jsonl(directory / reserved):
                owner_of_id[sample.id] = _where(directory / reserved)
    samples = []
    for path in user_case_files(directory):
        where = _where(path)
        for sample in load_case_file(path):
            if sample.id in owner_of_id:
                raise CaseFileError(where, f"duplicate id, already used in "
                                           f"{owner_of_id[sample.id]}",
                                    record=repr(sample.id), field="id")
            owner_of_id[sample.id] = where
            samples.append(sample)
    return samples


def dumps_jsonl(samples: Iterable[Sample]) -> str:
    """Samples as the text of a JSON-lines case file; the same samples give the same text."""
    return "".join(json.dumps(s.to_record(), sort_keys=True, ensure_ascii=False) + "\n"
                   for s in samples)

