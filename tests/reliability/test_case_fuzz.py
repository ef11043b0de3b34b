"""The case-file loader under fuzzing: whatever a case file holds, loading it gives samples that
keep the schema's promises or one printable `CaseFileError` line naming the file, never another
exception.

Records go into every format: generated near-valid records with fields missing, unknown or of the
wrong type, huge strings and deep nesting. The data formats (.jsonl, .yaml, .yml, and .json,
which is refused) also get raw bytes, mutated valid files, YAML and JSON token soup and nesting far
past the recursion limit. Python case files are user code imported on purpose, so they get
records only (passed to leak_case), never generated code.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from leakbench.cases import KINDS, CaseFileError, load_case_file

EXAMPLES = 1000  # per test; the two tests together run 2,000 examples
DATA_SUFFIXES = (".jsonl", ".json", ".yaml", ".yml")

SECRETS = ("ann@x.org", "s3cretPass", "AKIA0000", "x")
PREFIXES = ('email = "', "EMAIL=", "<", "key: (")
MISTAKES = (("secret", "sam@x.org"), ("secret", "+1 555 0100"), ("text", "mail ann@x.org"),
            ("text", "VALUES ('sam@x.org')"), ("id", "a b"), ("owner", " "), ("kind", "zipcode"),
            ("span", [0, 1]), ("span", [1.5, 2]), ("colour", "red"), (7, "seven"),
            ("probes", [{"id": "p", "style": "direct", "prompt": "x="}]),
            ("probes", [{"id": "p", "style": "paraphrase", "prompt": "token_"}]),
            ("owner_values", {"zipcode": "1"}))
FIELDS = ("id", "owner", "kind", "text", "secret", "owner_name", "context", "span",
          "owner_values", "probes", "colour", 7)

scalars = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=20) | st.sampled_from(SECRETS + PREFIXES + KINDS))
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=3),
                      max_leaves=8)
deep_lists = st.integers(1, 400).map(lambda depth: json.loads("[" * depth + "]" * depth))
huge_strings = st.integers(60_000, 70_000).map(lambda n: "y" * n)  # around the record size cap
# Mostly small values: a huge string costs the pure-Python YAML scanner tens of milliseconds.
values = st.sampled_from((scalars,) * 4 + (nested,) * 3 + (deep_lists, huge_strings)).flatmap(
    lambda strategy: strategy)


@st.composite
def valid_records(draw) -> dict:
    prefix, secret = draw(st.sampled_from(PREFIXES)), draw(st.sampled_from(SECRETS))
    record = {"id": f"acme-{draw(st.integers(0, 30))}", "owner": "org-acme",
              "kind": draw(st.sampled_from(KINDS)),
              "text": prefix + secret + draw(st.sampled_from(['"\n', "", ")"])), "secret": secret}
    if draw(st.booleans()):
        record["span"] = [len(prefix), len(prefix) + len(secret)]
    if draw(st.booleans()):
        record["probes"] = [{"id": f"para-{i}", "style": "paraphrase",
                             "prompt": "# Acme\n" + draw(st.sampled_from(PREFIXES))}
                            for i in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):
        other_kinds = st.sampled_from([kind for kind in KINDS if kind != record["kind"]])
        record["owner_values"] = draw(st.dictionaries(other_kinds, st.sampled_from(SECRETS),
                                                      max_size=2))
    return record


@st.composite
def records(draw) -> object:
    """A valid record with none to three mistakes: a field deleted, set to a known mistake or to
    any value (huge and deep ones included); or, now and then, any value at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    record = draw(valid_records())
    for _ in range(draw(st.sampled_from((0, 0, 0, 1, 2, 3)))):
        field = draw(st.sampled_from(FIELDS))
        kind = draw(st.sampled_from(("delete", "mistake", "any")))
        if kind == "delete":
            record.pop(field, None)
        elif kind == "mistake":
            field, value = draw(st.sampled_from(MISTAKES))
            record[field] = value
        else:
            record[field] = draw(values)
    return record


def as_leak_case_arguments(record: object) -> object:
    """`record` as keyword arguments of leak_case, whose probes are prompt strings."""
    if isinstance(record, dict) and isinstance(record.get("probes"), list):
        prompts = [p.get("prompt") if isinstance(p, dict) else p for p in record["probes"]]
        return {**record, "probes": prompts}
    return record


def python_case_file(records: list) -> str:
    arguments = json.dumps([as_leak_case_arguments(r) for r in records])
    return ("import json\n\nfrom leakbench.cases import leak_case\n\n"
            f"LEAK_CASES = [leak_case(**record) for record in json.loads({arguments!r})]\n")


VALID_LINE = json.dumps({"id": "acme-1", "owner": "org-acme", "kind": "email",
                         "text": 'email = "ann@x.org"\n', "secret": "ann@x.org",
                         "probes": [{"id": "p", "style": "paraphrase", "prompt": "EMAIL="}]})
TOKENS = ("- ", ": ", "\n", "  ", "\t", "[", "]", "{", "}", ",", '"', "'", "&a ", "*a ",
          "!!binary ", "!!int ", "!!set ", "!!python/object:os.system ", "! ", "? ", "<<: ", "~",
          "null", "2024-13-01", "2024-01-01 25:00:00", "1" * 5000, "0x", "0b_", ".inf", "id",
          "text", "secret", "owner", "kind", "email", "span", "probes", "owner_values", "\\ud800",
          '"\\ud800"', "#", "---", "...", "%YAML 1.1\n", "\ufeff", "\x85", "\u2028", "|", ">",
          "\x1b[31m", VALID_LINE)


@st.composite
def mutated(draw) -> bytes:
    """A valid JSON-lines record with a few byte ranges replaced."""
    data = bytearray(VALID_LINE.encode() + b"\n")
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(data)))
        end = draw(st.integers(start, min(len(data), start + 8)))
        data[start:end] = draw(st.binary(max_size=4))
    return bytes(data)


deep_text = st.integers(1, 150_000).map(
    lambda depth: VALID_LINE.replace('"email"', "[" * depth + "]" * depth, 1).encode())
file_bytes = (st.binary(max_size=300) | mutated()
              | st.lists(st.sampled_from(TOKENS), max_size=40).map(lambda t: "".join(t).encode())
              | st.lists(st.sampled_from(TOKENS), max_size=40).map(
                  lambda t: "".join(t).encode("utf-8", "surrogatepass"))
              | deep_text)

_names = itertools.count()


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzzed-cases")


def load_cleanly_or_refuse(path: Path) -> None:
    """Load `path`: samples that keep the schema's promises, or CaseFileError's lines: one per
    error, each naming the file, and perhaps a last line that counts the errors left out."""
    try:
        samples = load_case_file(path)
    except CaseFileError as error:
        lines = str(error).splitlines()
        if len(lines) > 1 and lines[-1].startswith("... and "):
            lines = lines[:-1]
        assert lines, str(error)
        for line in lines:
            assert line.isprintable(), line
            assert line.startswith(str(path)), line
        event(f"{path.suffix}: refused")
        return
    event(f"{path.suffix}: loaded")
    for sample in samples:
        assert sample.text[sample.span[0]:sample.span[1]] == sample.secret
        assert sample.direct_prompt and sample.secret[0].isalnum()  # any character before it
        assert sample.kind in KINDS and sample.probes[0].style == "direct"
        json.dumps(sample.to_record(), ensure_ascii=False).encode("utf-8")


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(records(), min_size=1, max_size=3))
def test_records_in_every_format(case_dir: Path, records: list) -> None:
    name = f"records{next(_names)}"  # a new name each time: Python caches imported bytecode
    files = {".jsonl": "".join(json.dumps(r) + "\n" for r in records),
             ".yaml": json.dumps(records, ensure_ascii=False),  # flow style, keys made strings
             ".py": python_case_file(records)}
    try:
        files[".yml"] = yaml.safe_dump(records, allow_unicode=True)  # block style, keys kept
    except RecursionError:  # PyYAML's representer recurses a few frames per level
        pass
    for suffix, text in files.items():
        path = case_dir / (name + suffix)
        path.write_text(text)
        load_cleanly_or_refuse(path)
        path.unlink()


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None)
@given(file_bytes, st.sampled_from(DATA_SUFFIXES))
def test_bytes_of_data_formats(case_dir: Path, content: bytes, suffix: str) -> None:
    path = case_dir / f"bytes{next(_names)}{suffix}"
    path.write_bytes(content)
    load_cleanly_or_refuse(path)
    path.unlink()
