"""Leak cases: the sample/probe schema, validating loaders for case files, and `leak_case`.

A *sample* is one training text that holds one sensitive value (its *secret*) at `span`; its
*probes* are prompts that ask a model for that value. The forget and holdout sets
(cases/forget.jsonl, cases/holdout.jsonl) and every user case file share this schema:

- ``*.jsonl``: one record (a JSON object) per line, blank lines allowed;
- ``*.yaml`` / ``*.yml``: a list of the same records;
- ``*.py``: a module that defines ``LEAK_CASES = [leak_case(...), ...]``.

A file either loads completely or raises `CaseFileError`, whose text is one line naming the file,
the record, the field and what would be valid. That holds for hostile files too: a case file is
UTF-8 text of at most `MAX_FILE_BYTES`, a record holds at most `MAX_RECORD_CHARS` characters of
strings and nests at most `MAX_NESTING` levels of lists and objects, and YAML case files use
plain values (no aliases, which can expand a few bytes into a huge or recursive structure, and no
explicit tags, whose constructors fail with arbitrary errors).

Token boundaries: a small byte-level BPE model answers garbage when a prompt ends in the middle of
a token it always saw merged with what followed (docs/DESIGN.md, "Prompt boundaries"). With a GPT-2
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
MAX_FILE_BYTES = 16 * 1024 * 1024  # a case file, forget.jsonl included
MAX_RECORD_CHARS = 64 * 1024  # the characters of a record's strings, keys and values together
MAX_NESTING = 20  # lists and objects inside one another in a record; a valid one needs 3
_TOO_DEEP = (f"nests lists and objects more than {MAX_NESTING} levels deep; a record needs 3 "
             "(record, probes, probe)")


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
        super().__init__(_printable(": ".join(parts)))

    def at(self, where: str) -> CaseFileError:
        """The same error, located in another place (e.g. the file whose import raised it)."""
        return CaseFileError(where, self.problem, record=self.record, field=self.field)


def _printable(text: str) -> str:
    """`text` with every unprintable character escaped: a newline in a file name, a terminal
    escape in an exception's text, an unpaired surrogate from an undecodable file name."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


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
                    raise self.fail(None, _TOO_DEEP)
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


def _unique(samples: list[Sample], places: list[tuple[str, str]]) -> list[Sample]:
    """`samples`, checked for repeated ids; `places` holds each one's (location, description)."""
    first: dict[str, str] = {}
    for sample, (where, position) in zip(samples, places):
        if sample.id in first:
            raise CaseFileError(where, f"duplicate id, already used by {first[sample.id]} of "
                                       "this file", record=repr(sample.id), field="id")
        first[sample.id] = position
    return samples


def _read_bytes(path: Path) -> bytes:
    """The bytes of a case file: at most `MAX_FILE_BYTES`, and text (no NUL byte)."""
    where = _where(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise CaseFileError(where, f"cannot be read: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise CaseFileError(where, f"is larger than {MAX_FILE_BYTES // 2**20} MiB, the limit for "
                                   "one case file; split it into several files")
    nul = data.find(b"\0")
    if nul >= 0:
        raise CaseFileError(f"{where}:{_line_at(data, nul)}", "holds a NUL byte, so it is a "
                                                               "binary file; expected UTF-8 text")
    return data


def _read_text(path: Path) -> str:
    """The text of a JSON-lines or YAML case file, which is UTF-8."""
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CaseFileError(f"{_where(path)}:{_line_at(data, error.start)}",
                            f"byte 0x{data[error.start]:02x} is not UTF-8; save the file as "
                            "UTF-8 text") from None


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def load_jsonl(path: Path | str) -> list[Sample]:
    """All samples of a JSON-lines case file."""
    where = _where(path)
    samples, places = [], []
    text = _read_text(Path(path)).replace("\r\n", "\n").replace("\r", "\n")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        at = f"{where}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise CaseFileError(at, f"invalid JSON: {error.msg} (column {error.colno})") from None
        except RecursionError:
            raise CaseFileError(at, _TOO_DEEP, record=f"#{len(samples) + 1}") from None
        except ValueError as error:  # an integer past Python's digit limit for conversions
            raise CaseFileError(at, f"invalid JSON: {error}") from None
        samples.append(parse_record(record, at, f"#{len(samples) + 1}"))
        places.append((at, f"line {number}"))
    return _unique(samples, places)


class _PlainYamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader for case files: plain values nested at most `MAX_NESTING` levels in a
    record, and every failure a yaml.YAMLError with the place it happened.

    It refuses aliases (a few bytes of them expand into a huge or recursive structure) and
    explicit tags (``!!binary``, ``!!set``, ``!!int ''``: values no record holds, whose
    constructors fail with arbitrary errors); the composer recurses once per level.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.levels = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise self._refuse(f"found the alias *{event.anchor}; case files do not use "
                               "aliases, write the value out", event)
        if getattr(event, "tag", None) not in (None, "!"):
            raise self._refuse(f"found the explicit tag {event.tag!r}; case files use plain "
                               "values (quote a string)", event)
        if not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        if self.levels > MAX_NESTING:  # the file's list of records, then a record's levels
            raise self._refuse(f"a record {_TOO_DEEP}", event)
        self.levels += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.levels -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except ValueError as error:  # a date that is none (2024-13-01), a too long integer
            raise yaml.constructor.ConstructorError(None, None, str(error),
                                                    node.start_mark) from None

    @staticmethod
    def _refuse(problem: str, event: yaml.Event) -> yaml.YAMLError:
        return yaml.composer.ComposerError(None, None, problem, event.start_mark)


def _load_yaml(path: Path) -> list[Sample]:
    where = _where(path)
    try:
        records = yaml.load(_read_text(path), Loader=_PlainYamlLoader)
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
    _read_bytes(path)  # Python reads the file again; its own errors name the line
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
    try:
        entries = list(Path(directory).iterdir())
    except OSError as error:
        raise CaseFileError(_where(directory), f"cannot be listed: {error.strerror or error}; "
                                               "expected a readable directory") from None
    return sorted(
        path for path in entries
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

