"""Messages: what a test prints carries no value of the run's privacy data (unless
--show-secrets) and no control character, whatever the model or its program wrote; the report
files carry no credential given as an engine argument.

The masks (`leakbench.judges.redact`), the redactor that applies them to any text and the escape
of control characters (`leakbench.redaction`), the message builders (`leakbench.outcomes`), the
manifest (`reports.manifest`), then the run against a fake --endpoint whose completions make
programs fail with a value, or with terminal escapes, in their failure reasons.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from reliability_helpers import ROOT, SHOWN_SAMPLE, as_run

from leakbench import masks, outcomes
from leakbench.masks import MASK, redact
from leakbench.normalization import contains, normalize
from leakbench.probes import FunctionalTask, PrivacyData
from leakbench.redaction import MIN_CHARS, Redactor, escape_controls, known_values
from leakbench.run_options import parse_options
from leakbench.sandbox import Result
from leakbench.value_scan import ValueScan
from reports.files import write_reports
from reports.manifest import REDACTED, build_manifest, is_credential, redact_command
from reports.records import Collected, Record
from reports.render import render
from reports.summary import summarize

OSC_TITLE, CLEAR_SCREEN = "\x1b]0;pwned\x07", "\x1b[2J"


@pytest.fixture(scope="module")
def data() -> PrivacyData:
    return PrivacyData.load(ROOT / "cases")


@pytest.fixture(scope="module")
def redactor(data: PrivacyData) -> Redactor:
    return Redactor(data.forget + data.holdout)


@pytest.fixture(scope="module")
def owner(data: PrivacyData):
    """A sample whose owner has a value of every kind used below."""
    return next(s for s in data.forget if s.id == SHOWN_SAMPLE)


def revealed(value: str) -> str:
    return redact(value).replace(MASK, "")


# --- The mask ----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(0, 41))
def test_mask_reveals_at_most_two_characters_and_a_quarter(length: int) -> None:
    value = "".join(chr(ord("a") + i % 26) for i in range(length))
    shown = revealed(value)
    assert len(shown) <= 2 and len(shown) <= length / 4, redact(value)


def test_mask_of_every_value_of_the_data(data: PrivacyData) -> None:
    for value, _kind in known_values(data.forget + data.holdout):
        shown = revealed(value)
        assert len(shown) <= min(2, len(value) / 4), (len(value), len(shown))


def test_short_values_are_fully_masked() -> None:
    assert redact("Ann Lee") == MASK
    assert redact("Michael Liu") == "M…u"


# --- The redactor ------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["<{}>", "x{}0a"], ids=["in longer text", "run on"])
def test_redactor_masks_every_known_value(data, redactor, written: str) -> None:
    """Each value inside longer text, and run on into more characters without a break ("Jerry
    Walkeron"): the latter shows the value all the same, so it is masked, though the judges count
    names and addresses only as whole words."""
    values = {value for value, _ in known_values(data.forget + data.holdout)}
    searched = sorted(v for v in values if len(v) >= MIN_CHARS)
    masked = redactor.masked(" | ".join(written.format(value) for value in searched))
    found = ValueScan(searched).found(masked)
    assert found == [], f"{len(found)} values left, e.g. {redact(found[0])}"
    assert masked.count(" | ") == len(searched) - 1  # the text around the values stays


def test_a_cut_forget_set_keeps_the_samples_it_leaves_out_for_the_mask(data) -> None:
    """A small model plants part of the forget set (PlantConfig.forget_samples); the run's
    Redactor masks the values of the rest too (plugin.collection's `redactor`), as the model may
    write one of them all the same."""
    cut = PrivacyData.load(ROOT / "cases", 120)
    left_out = {s.id for s in cut.unplanted}
    assert left_out and left_out.isdisjoint(s.id for s in cut.forget)
    assert {s.id for s in cut.forget + cut.unplanted} == {s.id for s in data.forget}
    assert data.unplanted == []


WRITTEN_OTHERWISE = {
    "phone": lambda v: "(" + " ".join(re.findall(r"\d+", v)) + ")",
    "credit_card": lambda v: " ".join(v[i:i + 4] for i in range(0, len(v), 4)),
    "dob": lambda v: v.replace("-", "/"),
    "national_id": lambda v: v.replace("-", ""),
    "iban": lambda v: " ".join(v[i:i + 4].lower() for i in range(0, len(v), 4)),
    "email": str.upper,
    "name": lambda v: v.upper().replace(" ", "\n"),
    "address": lambda v: v.lower().replace(",", ""),
    "github_token": lambda v: v[:10] + "\n    " + v[10:],
    "password": lambda v: f"'{v}'",
}


@pytest.mark.parametrize("kind", sorted(WRITTEN_OTHERWISE))
def test_redactor_masks_values_written_another_way(owner, redactor, kind: str) -> None:
    value = owner.owner_values.get(kind) or owner.secret
    assert owner.kind == kind or kind in owner.owner_values
    text = f"AssertionError: got {WRITTEN_OTHERWISE[kind](value)} instead"
    assert contains(text, value, kind)  # the judges would call it a leak
    masked = redactor.masked(text)
    assert not contains(masked, value, kind), masked
    assert masked.startswith("AssertionError: got ") and masked.endswith(" instead")


def _iso_date(value: str, layout: str) -> str:
    return datetime.strptime(value, "%Y-%m-%d").strftime(layout)


LAID_OUT_OTHERWISE = {  # each layout the judges call a direct leak of the value
    "phone without its country code": ("phone", lambda v: "-".join(re.findall(r"\d+", v)[-3:])),
    "phone with +1": ("phone", lambda v: "+1 " + normalize(v, "phone")),
    "date month first": ("dob", lambda v: _iso_date(v, "%m/%d/%Y")),
    "date day first": ("dob", lambda v: _iso_date(v, "%d.%m.%Y")),
    "date with the month's name": ("dob", lambda v: _iso_date(v, "%B %d, %Y")),
    "date with the month's abbreviation": ("dob", lambda v: _iso_date(v, "%d %b %Y")),
    "ipv4 with leading zeros": ("ipv4", lambda v: ".".join(f"{int(o):03d}" for o in v.split("."))),
    "email URL-encoded": ("email", lambda v: v.replace("@", "%40")),
    "name with a title": ("name", lambda v: f"Dr. {v.upper()}"),
    "aws access key id in lower case": ("aws_access_key_id", str.lower),
    "password URL-encoded": ("password", lambda v: quote(v, safe="")),
    "db uri with another scheme": ("db_uri", lambda v: "postgres+driver" + v[v.index(":"):]),
}


@pytest.mark.parametrize("layout", sorted(LAID_OUT_OTHERWISE))
def test_redactor_masks_every_value_laid_out_otherwise(data, redactor, layout: str) -> None:
    """Whatever the judges call a direct leak of a value is masked: every value of the data of
    the layout's kind, laid out so."""
    kind, lay_out = LAID_OUT_OTHERWISE[layout]
    values = sorted({v for v, k in known_values(data.forget + data.holdout) if k == kind})
    text = " | ".join(f"<{lay_out(value)}>" for value in values)
    assert all(contains(text, value, kind) for value in values)
    masked = redactor.masked(text)
    left = [value for value in values if contains(masked, value, kind)]
    assert left == [], f"{len(left)} values left, e.g. {redact(left[0])}"


def test_redactor_keeps_text_without_values(redactor) -> None:
    text = "NameError: name 'frobnicate' is not defined (line 12, 2024-01-01)"
    assert redactor.masked(text) == text


@pytest.mark.parametrize("name", [name for name in dir(masks) if name.endswith("_VIEW")])
@pytest.mark.parametrize("text", [
    "", "plain ascii text", "Tab\there, CRLF\r\n and  runs   of spaces",
    "mail%40Example.COM %2fpath %zz %7", "ß İ ﬁ Σ ς ǅ ½ ٣ ⅷ",  # case folding expands, other digits
    "call +44 (0)20-7946 0958 or 010.001.002.003", "x" * 3 + "\u0085\u2028\u00a0" + "y",
])
def test_a_views_text_is_the_text_of_its_positions(name: str, text: str) -> None:
    """The redactor reads a view's `text` to find where values may start and maps positions only
    then (`normalize`): both must give the same normalized text, or a value is missed."""
    view = getattr(masks, name)
    assert view.text(text) == view.normalize(text)[0]
    assert view.text(text * 2) == view.normalize(text * 2)[0]  # the filled table gives the same


def test_overlapping_values_become_one_mask(owner) -> None:
    sample = replace(owner, kind="password", secret="abcdefgh12", owner_name="",
                     owner_values={"aws_access_key_id": "gh12345678"})
    redactor = Redactor([sample])
    assert redactor.masked("[abcdefgh12]") == "[a…2]"
    assert redactor.masked("[abcdefgh12345678]") == f"[{MASK}]"


def test_show_secrets_masks_nothing_but_escapes(owner) -> None:
    redactor = Redactor([owner], show_secrets=True)
    text = f"leak of {owner.secret}{CLEAR_SCREEN}"
    assert redactor.message(text) == f"leak of {owner.secret}\\x1b[2J"
    assert redactor.shown(owner.secret) == owner.secret


# --- Control characters ------------------------------------------------------------------------


@pytest.mark.parametrize("raw, shown", [
    (OSC_TITLE, "\\x1b]0;pwned\\x07"),
    (CLEAR_SCREEN, "\\x1b[2J"),
    ("a\nb\r\tc", "a\\nb\\r\\tc"),
    ("\x9b31mred", "\\x9b31mred"),
    ("\x00\x7f\x85", "\\x00\\x7f\\x85"),
    ("\u202egnp.exe", "\\u202egnp.exe"),
    ("line\u2028next", "line\\u2028next"),
    ("Müller … ✓", "Müller … ✓"),
])
def test_control_characters_are_escaped(raw: str, shown: str) -> None:
    assert escape_controls(raw) == shown


def test_no_control_character_survives() -> None:
    for code in range(0x10000):
        char = chr(code)
        if unicodedata.category(char) == "Cs":
            continue
        escaped = escape_controls(char)
        assert all(unicodedata.category(c) != "Cc" for c in escaped), hex(code)


# --- The messages of the benchmark's tests -----------------------------------------------------


class FakeProperty:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    def __call__(self, name: str, value: str) -> None:
        self.recorded.append((name, value))


def functional_failure(reason: str, redactor: Redactor) -> tuple[str, list[tuple[str, str]]]:
    """The failure message and the recorded properties of a functional test whose program
    failed with `reason`."""
    task = FunctionalTask("humaneval", "HumanEval-011", "def f():\n", None)
    record = FakeProperty()
    with pytest.raises(pytest.fail.Exception) as failed:
        outcomes.functional(record, {"model": "m", "variant": "v"}, "none", task,
                            [Result("failed", reason, 0.1, "", "")], redactor=redactor)
    return str(failed.value), record.recorded


def reasons(owner) -> dict[str, tuple[str, str]]:
    """A failure reason that carries a value, and the value."""
    values = owner.owner_values
    spaced_phone = " ".join(re.findall(r"\d+", values["phone"]))
    return {
        "NameError": (f"NameError: name '{values['github_token']}' is not defined",
                      values["github_token"]),
        "AssertionError": (f"AssertionError: {values['name']}, {spaced_phone}", values["phone"]),
        "email": (f"AssertionError: 'user {owner.secret.upper()}' != 'x'", owner.secret),
    }


@pytest.mark.parametrize("case", ["NameError", "AssertionError", "email"])
@pytest.mark.parametrize("show", [False, True])
def test_functional_failure_masks_a_leaked_value_unless_asked(owner, case: str,
                                                              show: bool) -> None:
    reason, value = reasons(owner)[case]
    kind = next(k for k, v in {**owner.owner_values, owner.kind: owner.secret}.items()
                if v == value)
    message, recorded = functional_failure(reason, Redactor([owner], show_secrets=show))
    assert contains(message, value, kind) is show, message
    assert all(not contains(text, value, kind) for _, text in recorded)
    if not show:
        assert redact(value) in message


@pytest.mark.parametrize("show", [False, True])
def test_functional_failure_escapes_terminal_sequences(owner, show: bool) -> None:
    message, recorded = functional_failure(f"ValueError: {OSC_TITLE}{CLEAR_SCREEN}\nnext",
                                           Redactor([owner], show_secrets=show))
    assert "ValueError: \\x1b]0;pwned\\x07\\x1b[2J\\nnext" in message
    assert "\x1b" not in message and "\n" not in message
    assert all("\x1b" not in text for _, text in recorded)


# --- Credentials in the manifest ---------------------------------------------------------------


@pytest.mark.parametrize("name, credential", [
    ("hf_token", True), ("api_key", True), ("password", True), ("HF-TOKEN", True),
    ("aws_secret_access_key", True), ("db_passwd", True), ("tokenizer", False),
    ("tokenizer_mode", False), ("max_num_batched_tokens", False),
    ("tensor_parallel_size", False),
])
def test_credential_names(name: str, credential: bool) -> None:
    assert is_credential(name) is credential


@pytest.mark.parametrize("args, shown", [
    (["--engine-arg", "hf_token=SECRET123"], ["--engine-arg", f"hf_token={REDACTED}"]),
    (["--engine-arg=hf_token=SECRET123"], [f"--engine-arg=hf_token={REDACTED}"]),
    (["--engine-arg", "API-KEY=SECRET123"], ["--engine-arg", f"API-KEY={REDACTED}"]),
    (["--engine-arg", 'hf_overrides={"api_key": "SECRET123", "n": 2}'],
     ["--engine-arg", f'hf_overrides={{"api_key": "{REDACTED}", "n": 2}}']),
    (["--endpoint=http://host:8000/v1?api_key=SECRET123&x=1"],
     [f"--endpoint=http://host:8000/v1?api_key={REDACTED}&x=1"]),
    (["--endpoint", "https://user:SECRET123@host/v1"], ["--endpoint", f"https://{REDACTED}@host/v1"]),
    (["--engine-arg", "tensor_parallel_size=2", "--gate=direct_leak<=0.01", "-k", "a or b"],
     ["--engine-arg", "tensor_parallel_size=2", "--gate=direct_leak<=0.01", "-k", "a or b"]),
])
def test_command_line_without_credentials(args: list[str], shown: list[str]) -> None:
    assert redact_command(args) == shown


@pytest.fixture()
def engine_config(tmp_path: Path) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text('[engine]\npassword = "SECRET789"\nswap_space = 4\n'
                    '[engine.hf_overrides]\napi_key = "SECRET000"\n')
    return path


def test_report_files_hold_no_engine_credential(tmp_path: Path, engine_config: Path) -> None:
    args = ("benchmark", "--engine-arg", "hf_token=SECRET123", "--engine-arg=api_key=SECRET456",
            "--engine-arg", "tensor_parallel_size=2", f"--engine-config={engine_config}")
    options = parse_options({"engine_arg": ["hf_token=SECRET123", "api_key=SECRET456",
                                            "tensor_parallel_size=2"],
                             "engine_config": str(engine_config)})
    manifest = build_manifest(options, args, datetime.now(UTC), 1)
    collected = Collected(records=[Record("direct_leak", "none", "tiny", "v", id="p",
                                          split="forget", category="none", positives=0,
                                          samples=1)])
    summary = summarize(collected, ())
    written = write_reports(summary, manifest, tmp_path / "out")
    texts = {path.name: path.read_bytes().decode("latin-1") for path in written}
    texts["terminal summary"] = render(summary, markdown=False)
    for where, text in texts.items():
        assert "SECRET" not in text, where
    engine_args = json.loads(texts["results.json"])["manifest"]["engine_args"]
    assert engine_args == {"password": REDACTED, "swap_space": 4,
                           "hf_overrides": {"api_key": REDACTED}, "hf_token": REDACTED,
                           "api_key": REDACTED, "tensor_parallel_size": 2}
    assert f"hf_token={REDACTED}" in texts["results.md"]


# --- A run whose programs fail with values and terminal escapes --------------------------------


@pytest.fixture(scope="module")
def leaky(endpoint_runs):
    run = as_run(endpoint_runs["leaky"])
    assert run.returncode in (0, 1), run.output[-3000:]
    return run


def failure_message(text: str, task_id: str) -> str:
    """The failure message of the functional test of `task_id` in a run's output or junit XML
    (the longest: the short summary's is cut to the terminal's width)."""
    return max(re.findall(rf"humaneval {task_id} \(none\): [^\n\"<]*", text), key=len)


@pytest.mark.engine
def test_leaking_program_failure_is_masked(leaky, owner) -> None:
    token, phone = owner.owner_values["github_token"], owner.owner_values["phone"]
    junit = Path(leaky.junit).read_text()
    for text in (leaky.output, junit):
        message = failure_message(text, "HumanEval-011")
        assert f"NameError: name '{redact(token)}' is not defined" in message, message
        message = failure_message(text, "HumanEval-012")
        assert f"AssertionError: {redact(owner.owner_values['name'])}, {redact(phone)}" in message

    for text in (leaky.output, Path(leaky.junit).read_text()):
        assert token not in text
        for kind in ("name", "phone"):
            assert not contains(text, owner.owner_values[kind], kind)


@pytest.mark.engine
def test_terminal_escapes_in_a_program_failure_are_shown_escaped(leaky) -> None:
    junit = Path(leaky.junit).read_text()
    for text in (leaky.output, junit):
        message = failure_message(text, "HumanEval-013")
        assert message.endswith("RuntimeError: \\x1b]0;pwned\\x07\\x1b[2J"), message
    assert "\x1b" not in leaky.output and "\x07" not in leaky.output
    assert "\x1b" not in junit and "#x1B" not in junit


@pytest.mark.engine
def test_report_files_hold_no_control_character(leaky) -> None:
    for path in leaky.reports():
        if path.suffix in (".md", ".csv", ".json"):
            text = path.read_text()
            assert not any(unicodedata.category(c) == "Cc" for c in text if c != "\n"), path


def test_every_value_of_the_data_is_searched_for(data) -> None:
    """The redactor leaves alone only values that normalize to fewer than MIN_CHARS characters:
    the data has none."""
    short = [v for v, k in known_values(data.forget + data.holdout)
             if len(normalize(v, k)) < MIN_CHARS]
    assert short == []
