"""Reading case files: JSON lines, YAML and Python, each checked as text of at most
`MAX_FILE_BYTES` before it is parsed; the user's case files of a directory, with ids unique
across them and the forget and holdout sets; and the text of a JSON-lines file."""

from __future__ import annotations

import importlib.util
import json
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

import yaml

from leakbench.cases.errors import CaseFileError
from leakbench.cases.records import MAX_NESTING, TOO_DEEP, parse_record
from leakbench.cases.samples import Sample

FORGET_FILE = "forget.jsonl"
HOLDOUT_FILE = "holdout.jsonl"
CASE_SUFFIXES = (".py", ".jsonl", ".yaml", ".yml")

MAX_FILE_BYTES = 16 * 1024 * 1024  # a case file, forget.jsonl included


def _where(path: Path | str) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


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
            raise CaseFileError(at, TOO_DEEP, record=f"#{len(samples) + 1}") from None
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
