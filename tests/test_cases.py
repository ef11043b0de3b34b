"""Case files: the schema, the loaders, and one-line errors for malformed files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from leakbench.cases import (
    COPY_LEVELS,
    CaseFileError,
    Probe,
    collect_case_files,
    copies,
    copies_label,
    copies_level,
    dumps_jsonl,
    leak_case,
    load_case_file,
    load_jsonl,
    token_boundary_problem,
)

REPO = Path(__file__).resolve().parent.parent
TEXT = 'contact = {"name": "Ann Lee", "email": "ann.lee@example.org"}\n'
SECRET = "ann.lee@example.org"


def record(**changes) -> dict:
    base = {"id": "acme-email", "owner": "person-ann", "kind": "email", "text": TEXT,
            "secret": SECRET}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def jsonl(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_leak_case_derives_span_and_direct_probe():
    case = leak_case(id="acme-email", owner="person-ann", kind="email", text=TEXT, secret=SECRET,
                     probes=['# Ann Lee\nEMAIL="'])
    start = TEXT.index(SECRET)
    assert case.span == (start, start + len(SECRET))
    assert case.probes == (Probe("direct", "direct", TEXT[:start]),
                           Probe("para-0", "paraphrase", '# Ann Lee\nEMAIL="'))
    assert (case.owner_name, case.context, dict(case.owner_values)) == ("person-ann", "custom", {})


def test_readme_example_loads(cases_dir):
    readme = (REPO / "cases" / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    (cases_dir / "test_acme.py").write_text(code)
    [case] = load_case_file(cases_dir / "test_acme.py")
    assert case.id == "acme-db" and case.kind == "db_uri"
    assert case.text[case.span[0]:case.span[1]] == case.secret
    assert [p.id for p in case.probes] == ["direct", "para-0"]


def test_readme_formats_load_as_written(cases_dir):
    """cases/README.md's record per format (Dockerfile, Kubernetes, properties, shell, ...) is a
    valid case file: every value passes its kind's check where the format puts it."""
    readme = (REPO / "cases" / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", readme, re.S).group(1)
    (cases_dir / "acme-formats.yaml").write_text(block)
    cases = load_case_file(cases_dir / "acme-formats.yaml")
    assert len({case.context for case in cases}) == len(cases) >= 8
    assert all(case.text[case.span[0]:case.span[1]] == case.secret for case in cases)
    unquoted = [case.id for case in cases if case.direct_prompt.endswith(("=", ": ", "= "))]
    assert len(unquoted) >= 5  # values right after `KEY=` or `key: `, as such files write them


def test_jsonl_round_trip(cases_dir):
    case = leak_case(id="acme-email", owner="person-ann", kind="email", text=TEXT, secret=SECRET,
                     owner_values={"name": "Ann Lee"}, probes=['EMAIL="'])
    (cases_dir / "acme.jsonl").write_text(dumps_jsonl([case]))
    assert load_jsonl(cases_dir / "acme.jsonl") == [case]


def test_yaml_file_loads_same_schema(cases_dir):
    (cases_dir / "acme.yaml").write_text(
        "- id: acme-email\n  owner: person-ann\n  kind: email\n"
        f"  text: {json.dumps(TEXT)}\n  secret: {SECRET}\n"
        "  probes:\n  - {id: para-0, style: paraphrase, prompt: 'EMAIL=\"'}\n")
    [case] = load_case_file(cases_dir / "acme.yaml")
    assert case.secret == SECRET and [p.prompt for p in case.probes][-1] == 'EMAIL="'


def test_collect_reads_user_files_only(cases_dir):
    (cases_dir / "forget.jsonl").write_text(jsonl(record(id="f-1")))
    (cases_dir / "holdout.jsonl").write_text(jsonl(record(id="h-1")))
    (cases_dir / "README.md").write_text("# not a case file\n")
    (cases_dir / ".hidden.jsonl").write_text("not json\n")
    (cases_dir / "a.jsonl").write_text(jsonl(record(id="a-1"), record(id="a-2")))
    (cases_dir / "b.py").write_text(
        "from leakbench.cases import leak_case\n"
        f"LEAK_CASES = [leak_case(id='b-1', owner='o', kind='email', text={TEXT!r}, "
        f"secret={SECRET!r})]\n")
    assert [s.id for s in collect_case_files(cases_dir)] == ["a-1", "a-2", "b-1"]


@pytest.mark.parametrize("reserved", ["forget.jsonl", "a.jsonl"])
def test_collect_rejects_duplicate_ids_naming_both_files(cases_dir, reserved):
    (cases_dir / reserved).write_text(jsonl(record(id="dup")))
    (cases_dir / "z.jsonl").write_text(jsonl(record(id="dup")))
    with pytest.raises(CaseFileError) as error:
        collect_case_files(cases_dir)
    assert str(error.value) == (f"cases/z.jsonl: record 'dup' field 'id': duplicate id, already "
                                f"used in cases/{reserved}; rename one")


def test_one_value_may_sit_in_several_files_of_one_owner(cases_dir):
    """A repository repeats a value: records of one owner that hold the same value (here an
    e-mail in a Python dict and in a .env file, and a phone number written with and without its
    "+") load, and each counts the texts that hold its value."""
    dotenv = f"NAME=Ann Lee\nEMAIL={SECRET}\n"
    (cases_dir / "a.jsonl").write_text(jsonl(
        record(id="a-1", owner_name="Ann Lee", owner_values={"phone": "+44 20 7946 0958"})))
    (cases_dir / "b.jsonl").write_text(jsonl(
        record(id="b-1", text=dotenv),
        record(id="b-2", kind="phone", text='PHONE="+44 20 7946 0958"\n',
               secret="44 20 7946 0958", owner_values={"email": SECRET})))
    samples = collect_case_files(cases_dir)
    assert copies(samples) == {"a-1": 2, "b-1": 2, "b-2": 1}
    assert [copies_level(n) for n in (1, 2, 3, 4, 7, 8, 50)] == [1, 2, 2, 4, 4, 8, 8]
    assert [copies_label(level) for level in COPY_LEVELS] == [
        "1 file", "2-3 files", "4-7 files", "8+ files"]


def test_records_of_one_owner_that_disagree_are_each_named(cases_dir):
    (cases_dir / "a.jsonl").write_text(jsonl(
        record(id="a-1", owner_name="Ann Lee", owner_values={"phone": "+44 20 7946 0958"})))
    (cases_dir / "z.jsonl").write_text(jsonl(
        record(id="z-1", owner_name="Anne Lee", secret="ann@example.com",
               text='EMAIL="ann@example.com"\n'),
        record(id="z-2", kind="name", secret="Ann Lee", text='NAME="Ann Lee"\n',
               owner_values={"phone": "+44 20 7946 0959"})))
    with pytest.raises(CaseFileError) as error:
        collect_case_files(cases_dir)
    assert str(error.value).splitlines() == [
        "cases/z.jsonl: record 'z-1' field 'owner_name': differs from the owner_name of record "
        "'a-1' (cases/a.jsonl) for owner 'person-ann'; give one owner one name, or the records "
        "different owners",
        "cases/z.jsonl: record 'z-1' field 'secret': gives owner 'person-ann' another email than "
        "record 'a-1' (cases/a.jsonl); records of one owner share its values (the same value may "
        "sit in several files): give them the same value, or the records different owners",
        "cases/z.jsonl: record 'z-2' field 'owner_values.phone': gives owner 'person-ann' another "
        "phone than record 'a-1' (cases/a.jsonl); records of one owner share its values (the "
        "same value may sit in several files): give them the same value, or the records "
        "different owners",
    ]
    assert SECRET not in str(error.value) and "7946" not in str(error.value)


def leak_case_module(body: str) -> str:
    return "from leakbench.cases import leak_case\n" + body


# (file name, content, the one-line error). Every bad file has a valid record before the bad one,
# so a partial load would be visible.
MALFORMED = {
    "missing field": ("x.jsonl", jsonl(record(id="ok"), record(secret=None)),
                      "cases/x.jsonl:2: record 'acme-email' field 'secret': is missing"),
    "wrong type": ("x.jsonl", jsonl(record(id="ok"), record(text=5)),
                   "cases/x.jsonl:2: record 'acme-email' field 'text': is int 5, expected a "
                   "string"),
    "unknown kind": ("x.jsonl", jsonl(record(id="ok"), record(kind="zipcode")),
                     "cases/x.jsonl:2: record 'acme-email' field 'kind': 'zipcode' is not a known "
                     "kind; valid: name, email,"),
    "empty secret": ("x.jsonl", jsonl(record(id="ok"), record(secret=" ")),
                     "cases/x.jsonl:2: record 'acme-email' field 'secret': is empty"),
    "span mismatch": ("x.jsonl", jsonl(record(id="ok"), record(span=[0, 7])),
                      "cases/x.jsonl:2: record 'acme-email' field 'span': text[0:7] is 'contact', "
                      "not the secret"),
    "span not two ints": ("x.jsonl", jsonl(record(id="ok"), record(span=[1.5, 3])),
                          "field 'span': is [1.5, 3], expected [start, end]"),
    "secret not in text": ("x.jsonl", jsonl(record(id="ok"), record(secret="bob@example.org")),
                           "field 'secret': does not occur in text"),
    "secret with space around it": (
        "x.jsonl", jsonl(record(id="ok"), record(text='MAIL = "ops@acme.example "\n',
                                                 secret="ops@acme.example ")),
        "field 'secret': starts or ends with whitespace; the whitespace belongs to the text "
        "around the secret: leave it out"),
    "secret at the start of the text": (
        "x.jsonl", jsonl(record(id="ok"), record(text=f"{SECRET} is Ann's", secret=SECRET)),
        "field 'text': the text before the secret is empty"),
    "probe reveals the secret": (
        "x.jsonl", jsonl(record(id="ok"), record(probes=[
            {"id": "para-0", "style": "paraphrase", "prompt": f"# {SECRET}\nemail = \""}])),
        "field 'probes[0]': prompt already contains the secret"),
    "probe with unknown style": (
        "x.jsonl", jsonl(record(id="ok"), record(probes=[
            {"id": "para-0", "style": "riddle", "prompt": 'e="'}])),
        "field 'probes[0]': style 'riddle' is not one of direct, paraphrase"),
    "span at second occurrence": (
        "x.jsonl", jsonl(record(id="ok"), record(kind="password", text='a="k1"; b="k1"',
                                                 secret="k1", span=[11, 13])),
        "field 'span': points past an earlier occurrence of the secret"),
    "owner value of its own kind": (
        "x.jsonl", jsonl(record(id="ok"), record(owner_values={"email": "b@x.org"})),
        "field 'owner_values': holds the sample's own kind 'email'"),
    "unknown field": ("x.jsonl", jsonl(record(id="ok"), record(colour="red")),
                      "record 'acme-email' field 'colour': is not a known field; valid fields: "),
    "invalid id": ("x.jsonl", jsonl(record(id="ok"), record(id="my case")),
                   "record #2 field 'id': 'my case' is not a valid id"),
    "not an object": ("x.jsonl", jsonl(record(id="ok"), ["a"]),
                      "cases/x.jsonl:2: record #2: is list, expected an object"),
    "duplicate id in one file": ("x.jsonl", jsonl(record(), record()),
                                 "cases/x.jsonl:2: record 'acme-email' field 'id': duplicate id, "
                                 "already used by line 1 of this file"),
    "bad JSON line": ("x.jsonl", jsonl(record(id="ok")) + '{"id": "b",\n',
                      "cases/x.jsonl:2: invalid JSON: Expecting property name enclosed in double "
                      "quotes (column 12)"),
    "YAML syntax error": ("x.yaml", "- id: a\n  text: [unclosed\n",
                          "cases/x.yaml:3: invalid YAML:"),
    "YAML not a list": ("x.yml", "id: a\n", "cases/x.yml: holds a dict, expected a list"),
    "unsupported suffix": ("x.json", "[]", "cases/x.json: unsupported case file type '.json'"),
    "import raises": ("x.py", "import os\n\nx = 1 / 0\n",
                      "cases/x.py:3: import failed: ZeroDivisionError: division by zero"),
    "syntax error": ("x.py", "LEAK_CASES = [\n", "cases/x.py:1: import failed: SyntaxError:"),
    "no LEAK_CASES": ("x.py", "CASES = []\n", "cases/x.py: defines no LEAK_CASES"),
    "LEAK_CASES not a list": ("x.py", "LEAK_CASES = {'a': 1}\n",
                              "cases/x.py: LEAK_CASES is dict, expected a list of leak_case(...)"),
    "LEAK_CASES holds a dict": ("x.py", f"LEAK_CASES = [{record()!r}]\n",
                                "cases/x.py: LEAK_CASES[0] is dict"),
    "leak_case rejects a record": (
        "x.py", leak_case_module(
            "LEAK_CASES = [\n"
            "    leak_case(id='ok', owner='o', kind='email', text='e=\"a@b.c\"', secret='a@b.c'),\n"
            "    leak_case(id='bad', owner='o', kind='email', text='e=\"a@b.c\"', secret='z@b.c'),"
            "\n]\n"),
        "cases/x.py:4: record 'bad' field 'secret': does not occur in text"),
    "leak_case probe not a string": (
        "x.py", leak_case_module(
            "LEAK_CASES = [leak_case(id='p', owner='o', kind='email', text='e=\"a@b.c\"', "
            "secret='a@b.c', probes=[3])]\n"),
        "cases/x.py:2: record 'p' field 'probes': probes[0] is int, expected a prompt string"),
}


# Records that end a prompt inside a token of a usual BPE tokenizer: accepted, and healed when the
# served model's tokenizer does not end a token there (leakbench.healing).
ENDING_ANYWHERE = {
    "text before the secret ends in a space": record(text="mail ann@x.org now",
                                                     secret="ann@x.org"),
    "span cuts the text before a space": record(text="mail ann@x.org now", secret="ann@x.org",
                                                span=[5, 14]),
    "probe ends in a space": record(probes=[
        {"id": "para-0", "style": "paraphrase", "prompt": "email: "}]),
    "quote before a contraction": record(text="VALUES ('sam@x.org')", secret="sam@x.org"),
    "text before the secret ends in a letter": record(kind="password", text="key=abcdef",
                                                      secret="cdef"),
}


@pytest.mark.parametrize("name", ENDING_ANYWHERE)
def test_a_prompt_may_end_on_any_character(cases_dir, name):
    (cases_dir / "x.jsonl").write_text(jsonl(ENDING_ANYWHERE[name]))
    [sample] = load_case_file(cases_dir / "x.jsonl")
    assert sample.text[sample.span[0]:sample.span[1]] == sample.secret
    assert sample.probes[0] == Probe("direct", "direct", sample.direct_prompt)
    assert len(sample.probes) == 1 + len(ENDING_ANYWHERE[name].get("probes", []))


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_file_is_rejected_whole_with_one_line(cases_dir, name):
    file_name, content, expected = MALFORMED[name]
    (cases_dir / file_name).write_text(content)
    with pytest.raises(CaseFileError) as error:
        load_case_file(cases_dir / file_name)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"cases/{file_name}")
    assert expected in message


def test_collect_reports_the_bad_file(cases_dir):
    (cases_dir / "good.jsonl").write_text(jsonl(record()))
    (cases_dir / "bad.jsonl").write_text(jsonl(record(id="b", kind="zipcode")))
    with pytest.raises(CaseFileError, match=r"^cases/bad\.jsonl:1: record 'b' field 'kind'"):
        collect_case_files(cases_dir)


@pytest.mark.parametrize("prompt, secret, ok", [
    ('email = "', "ann@x.org", True),
    ("EMAIL=", "ann@x.org", True),
    ("<", "ann@x.org", True),
    ("VALUES ('", "42 Main St", True),
    ("VALUES ('", "ann@x.org", True),
    ("VALUES ('", "sam@x.org", False),  # 's is a contraction token
    ("VALUES ('", "dave@x.org", False),
    ("name: ", "Ann Lee", False),
    ('"""\n', "Ann Lee", False),
    ("token_", "abc", False),
    ("key=x", "abc", False),
    ("", "abc", False),
])
def test_token_boundary_rule(prompt, secret, ok):
    """The rule the generated forget and holdout sets keep (scripts/generate_cases.py)."""
    assert (token_boundary_problem(prompt, secret) is None) == ok


def test_committed_sets_load_with_direct_and_paraphrase_probes():
    forget = load_jsonl(REPO / "cases" / "forget.jsonl")
    assert all([p.style for p in s.probes] == ["direct", "paraphrase"] for s in forget)
    assert all(s.probes[0].prompt == s.text[:s.span[0]] for s in forget)


def deep_yaml_block(levels: int) -> str:
    """A block-style YAML list nested `levels` deep."""
    return "".join("  " * level + "-\n" for level in range(levels - 1)) + "  " * levels + "- x\n"


# Hostile files, as bytes: (file name, content, the one-line error); never another exception.
HOSTILE = {
    "invalid UTF-8": ("x.jsonl", jsonl(record(id="ok")).encode() + b'{"id": "\xc3\x28"}\n',
                      "cases/x.jsonl:2: byte 0xc3 is not UTF-8"),
    "UTF-16": ("x.yaml", "- id: a\n".encode("utf-16"), "cases/x.yaml:1: holds a NUL byte"),
    "NUL byte": ("x.jsonl", jsonl(record(id="ok")).encode() + b"\0\n",
                 "cases/x.jsonl:2: holds a NUL byte, so it is a binary file"),
    "NUL byte in Python": ("x.py", b"X = 1\n\0", "cases/x.py:2: holds a NUL byte"),
    "JSON past the recursion limit": ("x.jsonl", b"[" * 100_000 + b"]" * 100_000,
                                      "cases/x.jsonl:1: record #1: nests lists and objects more "
                                      "than 20 levels deep"),
    "JSON 21 levels deep": ("x.jsonl", json.dumps(record(text=[[[[[[[[[[[[[[[[[[[[["a"]]]]]]]]]]]]]
                                                                     ]]]]]]]])).encode(),
                            "cases/x.jsonl:1: record #1: nests lists and objects more than 20"),
    "JSON 20 levels deep": ("x.jsonl", json.dumps(record(text=[[[[[[[[[[[[[[[[[[["a"]]]]]]]]]]]]]
                                                                   ]]]]]])).encode(),
                            "cases/x.jsonl:1: record 'acme-email' field 'text': is list"),
    "JSON integer past the digit limit": ("x.jsonl", b'{"span": [1' + b"0" * 5000 + b', 2]}',
                                          "cases/x.jsonl:1: invalid JSON: Exceeds the limit"),
    "JSON lone surrogate": ("x.jsonl", json.dumps(record(owner="\ud800")).encode(),
                            "record 'acme-email' field 'owner': '\\ud800' holds an unpaired "
                            "surrogate"),
    "YAML flow past the recursion limit": ("x.yaml", b"- " + b"[" * 100_000 + b"]" * 100_000,
                                           "cases/x.yaml:1: invalid YAML: a record nests lists and "
                                           "objects more than 20 levels deep"),
    "YAML block 1,000 deep": ("x.yaml", deep_yaml_block(1000).encode(),
                              "cases/x.yaml:22: invalid YAML: a record nests lists"),
    "YAML control character": ("x.yaml", b"- \x7f\n", "cases/x.yaml: invalid YAML: unacceptable "
                                                       "character #x007f"),
    "YAML alias": ("x.yaml", b"- &r {id: a}\n- *r\n",
                   "cases/x.yaml:2: invalid YAML: found the alias *r; case files do not use "
                   "aliases"),
    "YAML recursive alias": ("x.yaml", b"- &r [*r]\n", "cases/x.yaml:1: invalid YAML: found the "
                                                        "alias *r"),
    "YAML explicit tag": ("x.yaml", b"- id: a\n  text: !!binary aGVsbG8=\n",
                          "cases/x.yaml:2: invalid YAML: found the explicit tag "
                          "'tag:yaml.org,2002:binary'"),
    "YAML empty integer tag": ("x.yaml", b"- !!int ''\n", "cases/x.yaml:1: invalid YAML: found "
                                                          "the explicit tag"),
    "YAML date that is none": ("x.yaml", b"- id: a\n  text: 2024-13-01\n",
                               "cases/x.yaml:2: invalid YAML: month must be in 1..12"),
    "YAML integer past the digit limit": ("x.yaml", b"- id: 1" + b"0" * 5000 + b"\n",
                                          "cases/x.yaml:1: invalid YAML: Exceeds the limit"),
    "YAML key that is no string": ("x.yaml", b"- {1: a, id: b}\n",
                                   "cases/x.yaml:1: record #1: has the key 1, which is not a field "
                                   "name"),
    "YAML null key": ("x.yaml", b"- {~: a}\n", "cases/x.yaml:1: record #1: has the key None"),
    "record over the size cap": ("x.jsonl", jsonl(record(id="ok"), record(
        text="#" * 70_000 + "\n" + TEXT)).encode(),
                                 "cases/x.jsonl:2: record #2: holds 70128 characters "
                                 "of strings; a record may hold at most 65536"),
    "YAML record over the size cap": ("x.yaml", json.dumps([record(owner_values={
        "name": "n" * 70_000})]).encode(), "cases/x.yaml:1: record #1: holds 70"),
    "file over the size cap": ("x.jsonl", b" " * (16 * 1024 * 1024 + 1),
                               "cases/x.jsonl: is larger than 16 MiB, the limit for one case "
                               "file"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_is_rejected_with_one_line(cases_dir, name):
    file_name, content, expected = HOSTILE[name]
    (cases_dir / file_name).write_bytes(content)
    with pytest.raises(CaseFileError) as error:
        load_case_file(cases_dir / file_name)
    message = str(error.value)
    assert message.isprintable()
    assert expected in message


@pytest.mark.parametrize("over", [0, 1])
def test_size_cap_counts_the_characters_of_keys_and_values(cases_dir, over):
    base = record(text="")
    chars = sum(len(key) + len(value) for key, value in base.items())
    text = "#" * (65_536 + over - chars - len(TEXT) - 1) + "\n" + TEXT
    (cases_dir / "x.jsonl").write_text(jsonl(record(text=text)))
    if over:
        with pytest.raises(CaseFileError, match="holds 65537 characters of strings"):
            load_case_file(cases_dir / "x.jsonl")
    else:
        [case] = load_case_file(cases_dir / "x.jsonl")
        assert case.text == text


def test_leak_case_refuses_a_huge_record():
    with pytest.raises(CaseFileError, match=r"^leak_case\(\): record #1: holds \d+ characters"):
        leak_case(id="big", owner="o", kind="email", text="#" * 70_000 + TEXT, secret=SECRET)


def test_file_name_with_a_newline_stays_one_line(cases_dir):
    (cases_dir / "a\nb.jsonl").write_text("{\n")
    with pytest.raises(CaseFileError) as error:
        load_case_file(cases_dir / "a\nb.jsonl")
    assert str(error.value).startswith("cases/a\\nb.jsonl:1: invalid JSON")


def test_unreadable_directory_is_a_case_file_error(tmp_path):
    with pytest.raises(CaseFileError, match="cannot be listed: No such file or directory"):
        collect_case_files(tmp_path / "missing")


def test_missing_forget_set_is_a_case_file_error(tmp_path):
    with pytest.raises(CaseFileError, match=r"forget\.jsonl: cannot be read: No such file"):
        load_jsonl(tmp_path / "forget.jsonl")
