"""Reading case files: JSON lines, YAML and Python, each checked as text of at most
`MAX_FILE_BYTES` before it is parsed, every bad record of a file reported at once; the user's
case files of a directory, with ids unique across them and the forget and holdout sets and the
records of each owner agreeing on its values; and the text of a JSON-lines file."""

from __future__ import annotations

import importlib.util
import json
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from leakbench.cases.errors import CaseFileError, all_of
from leakbench.cases.records import (
    MAX_NESTING,
    REJECTED,
    TOO_DEEP,
    check_record,
    collecting_rejections,
)
from leakbench.cases.samples import Sample
from leakbench.normalization import normalize

FORGET_FILE = "forget.jsonl"
HOLDOUT_FILE = "holdout.jsonl"
DECOYS_FILE = "decoys.json"  # not a case file: the values exposure ranks secrets among
CASE_SUFFIXES = (".py", ".jsonl", ".yaml", ".yml")

MAX_FILE_BYTES = 16 * 1024 * 1024  # a case file, forget.jsonl included


def display_path(path: Path | str) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# What reading a case file gives: its valid samples, and every error of the file.
Read = tuple[list[Sample], list[CaseFileError]]


def _deduplicated(samples: list[Sample], places: list[tuple[str, str]],
                  errors: list[CaseFileError]) -> Read:
    """`samples` with each id once, and `errors` with an error for each repeated id; `places`
    holds each sample's (location, description)."""
    first: dict[str, str] = {}
    unique, repeated = [], []
    for sample, (where, position) in zip(samples, places):
        if sample.id in first:
            repeated.append(CaseFileError(where, f"duplicate id, already used by "
                                                 f"{first[sample.id]} of this file; rename one",
                                          record=repr(sample.id), field="id"))
        else:
            first[sample.id] = position
            unique.append(sample)
    return unique, errors + repeated


def _raising(read: Read) -> list[Sample]:
    samples, errors = read
    if errors:
        raise all_of(errors)
    return samples


def _read_bytes(path: Path) -> bytes:
    """The bytes of a case file: at most `MAX_FILE_BYTES`, and text (no NUL byte)."""
    where = display_path(path)
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
        raise CaseFileError(f"{display_path(path)}:{_line_at(data, error.start)}",
                            f"byte 0x{data[error.start]:02x} is not UTF-8; save the file as "
                            "UTF-8 text") from None


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def load_jsonl(path: Path | str) -> list[Sample]:
    """All samples of a JSON-lines case file, or every error of its lines raised at once."""
    return _raising(_read_or_refuse(_read_jsonl, Path(path)))


def _read_jsonl(path: Path) -> Read:
    where = display_path(path)
    samples, places, errors = [], [], []
    text = _read_text(path).replace("\r\n", "\n").replace("\r", "\n")
    records = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        records += 1
        at = f"{where}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            errors.append(CaseFileError(at, f"invalid JSON: {error.msg} (column {error.colno})"))
            continue
        except RecursionError:
            errors.append(CaseFileError(at, TOO_DEEP, record=f"#{records}"))
            continue
        except ValueError as error:  # an integer past Python's digit limit for conversions
            errors.append(CaseFileError(at, f"invalid JSON: {error}"))
            continue
        sample, problems = check_record(record, at, f"#{records}")
        errors += problems
        if sample is not None:
            samples.append(sample)
            places.append((at, f"line {number}"))
    return _deduplicated(samples, places, errors)


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
            raise self._refuse(f"a record {TOO_DEEP}", event)
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


def _field_lines(node: yaml.Node) -> dict[str | None, int]:
    """The line of a YAML record (under None) and of each of its fields and probes, as an error
    names them ("kind", "probes[0]")."""
    lines: dict[str | None, int] = {None: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                lines[key.value] = key.start_mark.line + 1
                if key.value == "probes" and isinstance(value, yaml.SequenceNode):
                    for i, probe in enumerate(value.value):
                        lines[f"probes[{i}]"] = probe.start_mark.line + 1
    return lines


def _line_of(field: str | None, lines: dict[str | None, int]) -> int:
    """The line of the field an error names: "probes[0].prompt" is at its probe, a missing
    field at its record."""
    for name in (field, field and field.split(".")[0], field and field.split("[")[0]):
        if name in lines:
            return lines[name]
    return lines[None]


def _read_yaml(path: Path) -> Read:
    """A YAML case file, each bad record reported at the line of the field at fault, or of the
    record."""
    where = display_path(path)
    text = _read_text(path)
    try:
        loader = _PlainYamlLoader(text)  # which refuses unprintable characters already
        try:
            node = loader.get_single_node()
            records = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise CaseFileError(f"{where}{line}", f"invalid YAML: {problem}") from None
    if not isinstance(records, list):
        raise CaseFileError(where, f"holds a {type(records).__name__}, expected a list of records "
                                   "(each starting with '- ')")
    samples, places, errors = [], [], []
    for i, (record, record_node) in enumerate(zip(records, node.value)):
        lines = _field_lines(record_node)
        at = f"{where}:{lines[None]}"
        sample, problems = check_record(record, where, f"#{i + 1}")
        for error in problems:
            errors.append(error.at(f"{where}:{_line_of(error.field, lines)}"))
        if sample is not None:
            samples.append(sample)
            places.append((at, f"record #{i + 1}"))
    return _deduplicated(samples, places, errors)


def _line_in(path: Path, frames: traceback.StackSummary) -> int | None:
    """The line of `path` in `frames` nearest to where they end (the call or the raise)."""
    lines = [frame.lineno for frame in frames if Path(frame.filename).resolve() == path.resolve()]
    return lines[-1] if lines else None


def _read_python(path: Path) -> Read:
    """Import a case module (it is the user's code: running it is the point) and read
    LEAK_CASES. Every bad leak_case call is reported, at its line, with what the import or
    LEAK_CASES gets wrong."""
    where = display_path(path)
    _read_bytes(path)  # Python reads the file again; its own errors name the line
    errors: list[CaseFileError] = []

    def collect(problems: list[CaseFileError]) -> None:
        line = _line_in(path, traceback.extract_stack())
        errors.extend(error.at(f"{where}:{line}" if line else where) for error in problems)

    name = f"leakbench_case_file_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here while it is imported
    try:
        with collecting_rejections(collect):
            spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # whatever the user's module raises, or exit()
        line = _line_in(path, traceback.extract_tb(error.__traceback__))
        if isinstance(error, SyntaxError):
            line = error.lineno
        located = f"{where}:{line}" if line else where
        if isinstance(error, CaseFileError):
            errors.append(error.at(located))
        else:
            errors.append(CaseFileError(located, f"import failed: {type(error).__name__}: "
                                                 f"{error}"))
        return [], errors
    finally:
        sys.modules.pop(name, None)
    if not hasattr(module, "LEAK_CASES"):
        return [], errors + [CaseFileError(where, "defines no LEAK_CASES; expected LEAK_CASES = "
                                                  "[leak_case(...), ...]")]
    cases = module.LEAK_CASES
    if not isinstance(cases, (list, tuple)):
        return [], errors + [CaseFileError(where, f"LEAK_CASES is {type(cases).__name__}, "
                                                  "expected a list of leak_case(...)")]
    samples, places = [], []
    for i, case in enumerate(cases):
        if isinstance(case, Sample):
            samples.append(case)
            places.append((where, f"LEAK_CASES[{i}]"))
        elif case is not REJECTED:  # a rejected case's problems are collected already
            errors.append(CaseFileError(where, f"LEAK_CASES[{i}] is {type(case).__name__} "
                                               f"{case!r:.40}, expected leak_case(...)"))
    return _deduplicated(samples, places, errors)


_READERS = {".jsonl": _read_jsonl, ".yaml": _read_yaml, ".yml": _read_yaml, ".py": _read_python}


def _read_or_refuse(reader: Callable[[Path], Read], path: Path) -> Read:
    """`reader`'s reading of `path`, with a file refused as a whole (unreadable, not text, not
    parsed) as one error."""
    try:
        return reader(path)
    except CaseFileError as error:
        return [], list(error.errors)


def read_case_file(path: Path | str) -> Read:
    """One case file, by suffix (.jsonl, .yaml/.yml or .py): its valid samples and every
    error."""
    path = Path(path)
    if path.suffix not in _READERS:
        return [], [CaseFileError(display_path(path), f"unsupported case file type "
                                                      f"{path.suffix!r}; use "
                                                      + ", ".join(CASE_SUFFIXES))]
    return _read_or_refuse(_READERS[path.suffix], path)


def load_case_file(path: Path | str) -> list[Sample]:
    """All samples of one case file, or every error of it raised at once."""
    return _raising(read_case_file(path))


def user_case_files(directory: Path | str) -> list[Path]:
    """The user's case files directly in `directory`: all files but the forget and holdout sets,
    the decoys, README*, and names starting with '.' or '_'."""
    try:
        entries = list(Path(directory).iterdir())
    except OSError as error:
        raise CaseFileError(display_path(directory), f"cannot be listed: "
                                                     f"{error.strerror or error}; expected a "
                                                     "readable directory") from None
    return sorted(
        path for path in entries
        if path.is_file() and path.name not in (FORGET_FILE, HOLDOUT_FILE, DECOYS_FILE)
        and not path.name.startswith((".", "_", "README"))
    )


def read_case_files(paths: Iterable[Path | str]
                    ) -> tuple[dict[Path, list[Sample]], list[CaseFileError]]:
    """The samples of each valid file of `paths`, and every error of the others: a file's own
    errors, and ids used twice across the files (reported at the later file)."""
    loaded: dict[Path, list[Sample]] = {}
    errors: list[CaseFileError] = []
    owner_of_id: dict[str, str] = {}
    for path in map(Path, paths):
        where = display_path(path)
        samples, problems = read_case_file(path)
        problems += [CaseFileError(where, f"duplicate id, already used in {owner_of_id[s.id]}; "
                                          "rename one", record=repr(s.id), field="id")
                     for s in samples if s.id in owner_of_id]
        owner_of_id.update((s.id, where) for s in samples if s.id not in owner_of_id)
        errors += problems
        if not problems:
            loaded[path] = samples
    return loaded, errors


def owner_conflicts(loaded: dict[Path, list[Sample]]) -> list[CaseFileError]:
    """Records of one owner that disagree: on the owner's name (where both give one), or on the
    value of a kind (a record's secret or one of its owner_values, compared as the judges
    normalize them). Several records may hold one value (a repository repeats a key in several
    files); an owner never has two values of one kind. Each error names the later record and the
    first one, never the values."""
    names: dict[str, tuple[str, str, str]] = {}  # owner -> (name, record id, where)
    values: dict[tuple[str, str], tuple[str, str, str]] = {}  # (owner, kind) -> (value, id, where)
    errors = []
    for path, samples in loaded.items():
        where = display_path(path)
        for sample in samples:
            if sample.owner_name != sample.owner:
                name, first, first_where = names.setdefault(
                    sample.owner, (sample.owner_name, sample.id, where))
                if name != sample.owner_name:
                    errors.append(CaseFileError(
                        where, f"differs from the owner_name of record {first!r} ({first_where}) "
                               f"for owner {sample.owner!r}; give one owner one name, or the "
                               "records different owners", record=repr(sample.id),
                        field="owner_name"))
            given = {sample.kind: ("secret", sample.value)} | {
                kind: (f"owner_values.{kind}", value)
                for kind, value in sample.owner_values.items()}
            for kind, (field, value) in given.items():
                normalized, first, first_where = values.setdefault(
                    (sample.owner, kind), (normalize(value, kind), sample.id, where))
                if normalized != normalize(value, kind):
                    errors.append(CaseFileError(
                        where, f"gives owner {sample.owner!r} another {kind} than record "
                               f"{first!r} ({first_where}); records of one owner share its "
                               "values (the same value may sit in several files): give them "
                               "the same value, or the records different owners",
                        record=repr(sample.id), field=field))
    return errors


def run_case_files(directory: Path | str) -> list[Path]:
    """The case files a run reads from `directory`: the forget and holdout sets where they are,
    then the user's case files."""
    directory = Path(directory)
    reserved = [directory / name for name in (FORGET_FILE, HOLDOUT_FILE)
                if (directory / name).is_file()]
    return reserved + user_case_files(directory)


def collect_case_files(directory: Path | str) -> list[Sample]:
    """The samples of every user case file in `directory`, with ids unique across all of them
    and the forget and holdout sets and each owner's records agreeing (`owner_conflicts`);
    every error of every file is raised at once."""
    user_files = user_case_files(directory)
    loaded, errors = read_case_files(run_case_files(directory))
    errors += owner_conflicts(loaded)
    if errors:
        raise all_of(errors)
    return [sample for path in user_files for sample in loaded[path]]


def dumps_jsonl(samples: Iterable[Sample]) -> str:
    """Samples as the text of a JSON-lines case file; the same samples give the same text."""
    return "".join(json.dumps(s.to_record(), sort_keys=True, ensure_ascii=False) + "\n"
                   for s in samples)
