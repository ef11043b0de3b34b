"""Every mistake of a case file reported at once, each on its line; and secrets checked against
the format of their kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leakbench.cases import (
    KINDS,
    CaseFileError,
    CaseFileErrors,
    collect_case_files,
    dumps_jsonl,
    kind_problem,
    leak_case,
    load_case_file,
    load_jsonl,
)

GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY2zA4"


def record(**changes) -> dict:
    base = {"id": "acme-email", "owner": "org-acme", "kind": "email",
            "text": 'MAIL = "ops@acme.example"\n', "secret": "ops@acme.example"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def jsonl(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def errors_of(path: Path) -> list[str]:
    with pytest.raises(CaseFileError) as error:
        load_case_file(path)
    return str(error.value).splitlines()


# Five records with five different mistakes, between valid ones; as JSON lines.
FIVE_MISTAKES = [
    record(id="ok-1"),
    record(id="key", kind="aws_access_key_id", text=f'KEY = "{GITHUB_TOKEN}"\n',
           secret=GITHUB_TOKEN),
    record(id="mail", kind="emial"),
    record(id="db", kind="db_uri", text="url: postgresql://acme:pw@db/acme\n",
           secret="postgresql://acme:pw@db/acme", colour="red"),
    record(id="ok-2"),
    record(id="phone", kind="phone", text='tel = " +44 20 7946 0958"\n',
           secret=" +44 20 7946 0958"),
    record(id="card", kind="credit_card", text='card = "4532015112830366"\n',
           secret="4532015112830366",
           probes=[{"id": "p", "style": "paraphrase", "prompt": 'card = "4532015112830366"'}]),
]
FIVE_LINES = [
    "cases/five.jsonl:2: record 'key' field 'secret': does not look like an aws_access_key_id "
    "(20 capitals and digits starting with AKIA, ASIA, ABIA, ACCA or A3T); it looks like a "
    "github_token: set kind to 'github_token', or set kind_check to false for a deliberately "
    "odd value",
    "cases/five.jsonl:3: record 'mail' field 'kind': 'emial' is not a known kind; valid: ",
    "cases/five.jsonl:4: record 'db' field 'colour': is not a known field; valid fields: ",
    "cases/five.jsonl:6: record 'phone' field 'secret': starts or ends with whitespace",
    "cases/five.jsonl:7: record 'card' field 'probes[0]': prompt already contains the secret; "
    "end it where the secret would start",
]


def test_a_file_with_five_mistakes_yields_five_lines(cases_dir):
    (cases_dir / "five.jsonl").write_text(jsonl(*FIVE_MISTAKES))
    lines = errors_of(cases_dir / "five.jsonl")
    assert len(lines) == 5
    for line, expected in zip(lines, FIVE_LINES):
        assert line.startswith(expected), line


def test_yaml_errors_name_the_line_of_the_field(cases_dir):
    (cases_dir / "x.yaml").write_text(
        "- id: ok\n"  # 1
        "  owner: org-acme\n"
        "  kind: email\n"
        "  text: 'MAIL = \"ops@acme.example\"'\n"
        "  secret: ops@acme.example\n"
        "- id: bad\n"  # 6
        "  owner: org-acme\n"
        "  kind: emial\n"  # 8
        "  text: 'MAIL = \"ops@acme.example\"'\n"
        "  colour: red\n"  # 10
        "  probes:\n"
        "  - {id: p, style: riddle, prompt: 'e=\"'}\n"  # 12
        "- owner: org-acme\n"  # 13: no id, no kind, no text, no secret
    )
    assert errors_of(cases_dir / "x.yaml") == [
        "cases/x.yaml:10: record 'bad' field 'colour': is not a known field; valid fields: id, "
        "owner, kind, text, secret, owner_name, context, span, owner_values, probes, kind_check",
        "cases/x.yaml:6: record 'bad' field 'secret': is missing (required: id, owner, kind, "
        "text, secret)",
        "cases/x.yaml:8: record 'bad' field 'kind': 'emial' is not a known kind; valid: "
        + ", ".join(KINDS),
        "cases/x.yaml:12: record 'bad' field 'probes[0]': style 'riddle' is not one of direct, "
        "paraphrase",
        *(f"cases/x.yaml:13: record #3 field '{field}': is missing (required: id, owner, kind, "
          "text, secret)" for field in ("id", "kind", "text", "secret")),
    ]


def test_python_errors_name_the_line_of_each_leak_case(cases_dir):
    (cases_dir / "x.py").write_text(
        "from leakbench.cases import leak_case\n"
        "\n"
        "LEAK_CASES = [\n"
        "    leak_case(id='ok', owner='o', kind='email', text='e=\"a@b.co\"', secret='a@b.co'),\n"
        "    leak_case(id='gone', owner='o', kind='email', text='e=\"a@b.co\"', secret='z@b.co'),\n"
        "    leak_case(id='key', owner='o', kind='aws_access_key_id',\n"
        f"              text='k=\"{GITHUB_TOKEN}\"', secret='{GITHUB_TOKEN}'),\n"
        "    'not a case',\n"
        "]\n")
    lines = errors_of(cases_dir / "x.py")
    assert lines[0] == ("cases/x.py:5: record 'gone' field 'secret': does not occur in text; copy "
                        "it from the text")
    assert lines[1].startswith("cases/x.py:6: record 'key' field 'secret': does not look like an "
                               "aws_access_key_id")
    assert lines[2] == ("cases/x.py: LEAK_CASES[3] is str 'not a case', expected "
                        "leak_case(...)")
    assert len(lines) == 3


def test_leak_case_outside_a_case_file_raises_all_its_problems():
    with pytest.raises(CaseFileErrors) as error:
        leak_case(id="x", owner="o", kind="zipcode", text="e=x", secret="y", probes=[3])
    assert str(error.value).splitlines() == [
        "leak_case(): record 'x' field 'probes': probes[0] is int, expected a prompt string",
        "leak_case(): record 'x' field 'kind': 'zipcode' is not a known kind; valid: "
        + ", ".join(KINDS),
        "leak_case(): record 'x' field 'secret': does not occur in text; copy it from the text",
    ]


def test_one_record_with_several_mistakes_gives_one_line_each(cases_dir):
    (cases_dir / "x.jsonl").write_text(jsonl(record(owner=" ", text=5, colour="red",
                                                    owner_values={"zipcode": "1"})))
    assert [line.split(": ")[1] for line in errors_of(cases_dir / "x.jsonl")] == [
        "record 'acme-email' field 'colour'", "record 'acme-email' field 'owner'",
        "record 'acme-email' field 'text'", "record 'acme-email' field 'owner_values'"]


def test_errors_past_the_cap_are_counted(cases_dir):
    (cases_dir / "x.jsonl").write_text(jsonl(*(record(id=f"r{i}", kind="zipcode")
                                               for i in range(25))))
    lines = errors_of(cases_dir / "x.jsonl")
    assert len(lines) == 21
    assert lines[19].startswith("cases/x.jsonl:20: record 'r19' field 'kind'")
    assert lines[20] == "... and 5 more"


def test_bad_json_lines_do_not_hide_the_records_after_them(cases_dir):
    (cases_dir / "x.jsonl").write_text('{"id": \n' + jsonl(record(kind="zipcode")))
    lines = errors_of(cases_dir / "x.jsonl")
    assert [line.split(": ")[0] for line in lines] == ["cases/x.jsonl:1", "cases/x.jsonl:2"]


def test_collection_reports_the_errors_of_every_file(cases_dir):
    (cases_dir / "a.jsonl").write_text(jsonl(record(id="a", kind="zipcode")))
    (cases_dir / "b.jsonl").write_text(jsonl(record(id="a"), record(id="b", secret="x@y.zz")))
    with pytest.raises(CaseFileError) as error:
        collect_case_files(cases_dir)
    assert [line.split(": ")[:2] for line in str(error.value).splitlines()] == [
        ["cases/a.jsonl:1", "record 'a' field 'kind'"],
        ["cases/b.jsonl:2", "record 'b' field 'secret'"],
    ]


# --- Kind checks ---------------------------------------------------------------------------------

# (kind, a value of it, a value of another kind declared as it, the kind that one looks like)
KIND_CASES = [
    ("aws_access_key_id", "AKIAABCD1234EFGH5678", GITHUB_TOKEN, "github_token"),
    ("aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AKIAABCD1234EFGH5678",
     "aws_access_key_id"),
    ("github_token", GITHUB_TOKEN, "xoxb-123456789012-1234567890123-aBcDeFgHiJkLmNoPqRsTuVwX",
     "slack_token"),
    ("slack_token", "xoxb-123456789012-1234567890123-aBcDeFgHiJkLmNoPqRsTuVwX",
     "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
    ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
     "sk-" + "a" * 20 + "T3BlbkFJ" + "b" * 20, "openai_key"),
    ("openai_key", "sk-" + "a" * 20 + "T3BlbkFJ" + "b" * 20, "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
     "stripe_key"),
    ("db_uri", "postgresql://ann:pw@db.example.org:5432/ann", "ann@example.org", "email"),
    ("email", "ann.lee@example.org", "postgresql://ann:pw@db/ann", "db_uri"),
    ("ipv4", "93.184.216.34", "ann.lee@example.org", "email"),
    ("iban", "GB82 WEST 1234 5698 7654 32", "4532015112830366", "credit_card"),
    ("credit_card", "4532-0151-1283-0366", "GB82WEST12345698765432", "iban"),
    ("credit_card", "4532 0151 1283 0366", "4532 0151 1283 0367", None),  # Luhn fails
    ("dob", "July 21, 1984", "93.184.216.34", "ipv4"),
    ("national_id", "123-45-6789", "ann.lee@example.org", "email"),
    ("national_id", "QQ 12 34 56 C", "QQ 12 C", None),
    ("phone", "020 7946 0958", "ann.lee@example.org", "email"),
    ("phone", "+1 (555) 201-7788", "555-0100 ext. 12", None),
    ("name", "Dr. Ann Lee", "ann.lee@example.org", "email"),
    ("address", "12 Oak Street, Springfield, IL 62704", "93.184.216.34", "ipv4"),
]


@pytest.mark.parametrize("kind, valid, other, looks_like", KIND_CASES)
def test_a_secret_must_look_like_its_kind(kind, valid, other, looks_like):
    assert kind_problem(valid, kind) is None
    problem = kind_problem(other, kind)
    assert problem.startswith(f"does not look like a{'n' * (kind[0] in 'aeio')} {kind} (")
    if looks_like:
        assert f"; it looks like a{'n' * (looks_like[0] in 'aeio')} {looks_like}: set kind to " \
               f"{looks_like!r}, or set kind_check to false" in problem
    else:
        assert "; correct the value, or set kind_check to false" in problem


def test_a_password_may_be_anything():
    assert kind_problem(GITHUB_TOKEN, "password") is None
    assert kind_problem("x", "password") is None


def test_kind_check_false_accepts_an_odd_value_and_survives_a_round_trip(cases_dir):
    odd = record(kind="phone", text='tel = "555-0100 ext. 12"\n', secret="555-0100 ext. 12")
    (cases_dir / "x.jsonl").write_text(jsonl(odd))
    assert "does not look like a phone" in errors_of(cases_dir / "x.jsonl")[0]
    (cases_dir / "x.jsonl").write_text(jsonl({**odd, "kind_check": False}))
    [case] = load_jsonl(cases_dir / "x.jsonl")
    assert case.kind_check is False
    (cases_dir / "y.jsonl").write_text(dumps_jsonl([case]))
    assert load_jsonl(cases_dir / "y.jsonl") == [case]
    assert leak_case(id=case.id, owner=case.owner, kind="phone", text=case.text,
                     secret=case.secret, kind_check=False) == case


def test_kind_check_must_be_true_or_false(cases_dir):
    (cases_dir / "x.jsonl").write_text(jsonl(record(kind_check="no")))
    assert errors_of(cases_dir / "x.jsonl") == [
        "cases/x.jsonl:1: record 'acme-email' field 'kind_check': is str 'no', expected true or "
        "false"]
