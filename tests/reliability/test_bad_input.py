"""Bad input: each mistake stops `pytest benchmark` with ONE line that says what is wrong and
what would be valid, the usage-error exit status (4), and nothing written as if a run had
happened (no report directory, no cache directory).

Collection only (--co): every mistake here must be caught before a model is built or an engine
started, so the checks are fast and a mistake caught late shows up as a failure here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import ENV, ROOT

USAGE_ERROR = 4
NO_USER = "leakbench-no-such-user"
# Plugins of other packages in this environment that cost 0.8 s of imports per start and have no
# part in LeakBench's option or case-file handling.
QUIET_PLUGINS = ("-p", "no:cacheprovider", "-p", "no:faker", "-p", "no:anyio",
                 "-p", "no:hypothesispytest")


def collect(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[int, list[str]]:
    reports, cache = tmp_path / "reports", tmp_path / "cache"
    command = [sys.executable, "-m", "pytest", "benchmark", "--co", "-q", *QUIET_PLUGINS,
               f"--report-dir={reports}", f"--cache-dir={cache}", *args]
    done = subprocess.run(command, cwd=ROOT, env={**ENV, **(env or {})}, capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert not reports.exists(), "a report directory was written for a refused run"
    assert not cache.exists(), "a cache directory was written for a refused run"
    return done.returncode, lines


def assert_one_line(tmp_path: Path, args: list[str], *fragments: str,
                    env: dict | None = None) -> None:
    returncode, lines = collect(tmp_path, *args, env=env)
    shown = "\n".join(lines[:40])
    assert returncode == USAGE_ERROR, f"exit status {returncode}, output:\n{shown}"
    assert len(lines) == 1, f"{len(lines)} lines instead of one:\n{shown}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


OPTIONS = {
    "unknown algorithm": (["--algo=none,foo"],
                          ["--algo", "'foo'", "valid: none, ga, gd, kl"]),
    "empty algorithm list": (["--algo="], ["--algo", "valid:"]),
    "gate: unknown metric": (["--gate=leaks<=0.1"], ["--gate", "'leaks'", "valid: direct_leak"]),
    "gate: bad operator": (["--gate=direct_leak=>0.1"], ["--gate", "'=>'", "valid: <=, >="]),
    "gate: no number": (["--gate=direct_leak<=abc"], ["--gate", "'abc'", "not a number"]),
    "gate: rate out of range": (["--gate=direct_leak<=2"], ["--gate", "out of range", "[0, 1]"]),
    "gate with -x": (["--gate=direct_leak<=0.1", "-x"], ["--gate", "-x"]),
    "zero samples": (["--samples=0"], ["--samples", "'0'", "whole number >= 1"]),
    "fractional samples": (["--samples=1.5"], ["--samples", "'1.5'", "whole number >= 1"]),
    "negative temperature": (["--temperature=-1"], ["--temperature", "'-1'", "number >= 0"]),
    "temperature nan": (["--temperature=nan"], ["--temperature", "'nan'", "number >= 0"]),
    "two greedy samples": (["--samples=2", "--temperature=0"],
                           ["--samples", "--temperature above 0", "--samples=1"]),
    "endpoint without scheme": (["--endpoint=localhost:8000"],
                                ["--endpoint", "'localhost:8000'", "http(s)://host[:port]"]),
    "endpoint with another scheme": (["--endpoint=ftp://host/x"],
                                     ["--endpoint", "http(s)://host[:port]"]),
    "endpoint with credentials": (["--endpoint=http://user:pw@host:8000"],
                                  ["--endpoint", "http(s)://host[:port]"]),
    "endpoint with an unclosed IPv6 bracket": (["--endpoint=http://[::1"],
                                               ["--endpoint", "'http://[::1'",
                                                "http(s)://host[:port]"]),
    "unknown model": (["--model=garbage"], ["--model", "'garbage'", "tiny, micro",
                                            "Hugging Face id"]),
    "missing cases directory": (["--cases-dir=/nonexistent/cases"],
                                ["--cases-dir", "not a directory", "forget.jsonl"]),
    "cache directory is a file": (["--cache-dir=/etc/hostname"],
                                  ["--cache-dir", "not a directory"]),
    "report directory is a file": (["--report-dir=/etc/hostname"],
                                   ["--report-dir", "not a directory"]),
    "cache directory under the home of no user": (
        [f"--cache-dir=~{NO_USER}/cache"], ["--cache-dir", NO_USER, "write the path out"]),
    "report directory with a name too long": (
        [f"--report-dir=/tmp/{'r' * 300}"], ["--report-dir", "File name too long"]),
    "model directory with a name too long": (
        [f"--model=./{'m' * 300}"], ["--model", "File name too long"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(OPTIONS))
def test_bad_option(tmp_path: Path, mistake: str) -> None:
    args, fragments = OPTIONS[mistake]
    assert_one_line(tmp_path, args, *fragments)


# --- Models ------------------------------------------------------------------------------------


def test_model_directory_without_weights(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"vocab_size": 512}')
    assert_one_line(tmp_path, [f"--model={model}"],
                    "--model", str(model), "lacks weights (model*.safetensors or pytorch_model")


def test_model_directory_whose_tokenizer_is_larger_than_the_model(tmp_path: Path) -> None:
    """A tokenizer with ids past the embedding: today the run crashes deep in torch
    (IndexError: index out of range in self) once per test."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"vocab_size": 8,
                                                   "architectures": ["LlamaForCausalLM"]}))
    (model / "model.safetensors").write_bytes(b"\0" * 16)
    vocab = {f"t{i}": i for i in range(16)}
    (model / "tokenizer.json").write_text(json.dumps({
        "model": {"type": "BPE", "vocab": vocab, "merges": []},
        "added_tokens": [{"id": 16, "content": "<eos>", "special": True}]}))
    assert_one_line(tmp_path, [f"--model={model}"], "--model", "tokenizer", "vocab_size", "8")


# --- Case files --------------------------------------------------------------------------------

GOOD = {"id": "acme-db", "owner": "org-acme", "kind": "db_uri",
        "text": 'DATABASE_URL="postgresql://acme:s3cretPass@db.acme.example:5432/acme"\n',
        "secret": "postgresql://acme:s3cretPass@db.acme.example:5432/acme"}

CASE_FILES = {
    "missing field": ("acme.jsonl", json.dumps({k: v for k, v in GOOD.items() if k != "secret"}),
                      ["acme.jsonl:1", "field 'secret'", "is missing", "required: id, owner"]),
    "span not on the secret": ("acme.jsonl", json.dumps({**GOOD, "span": [0, 5]}),
                               ["acme.jsonl:1", "field 'span'", "not the secret"]),
    "unknown kind": ("acme.jsonl", json.dumps({**GOOD, "kind": "ssn"}),
                     ["acme.jsonl:1", "'ssn' is not a known kind", "valid: name, email"]),
    "duplicate id within the file": ("acme.jsonl", json.dumps(GOOD) + "\n" + json.dumps(GOOD),
                                     ["acme.jsonl:2", "duplicate id", "line 1"]),
    "id of the forget set again": ("acme.jsonl", json.dumps({**GOOD, "id": "name-fixture-0001"}),
                                   ["acme.jsonl", "duplicate id", "forget.jsonl"]),
    "invalid JSON": ("acme.jsonl", "{not json", ["acme.jsonl:1", "invalid JSON"]),
    "Python file raising on import": ("acme.py", "import os\nraise RuntimeError('boom')\n",
                                      ["acme.py:2", "import failed: RuntimeError: boom"]),
    "Python file calling sys.exit on import": ("acme.py", "import sys\nsys.exit(0)\n",
                                               ["acme.py", "import failed", "SystemExit"]),
    "Python file without LEAK_CASES": ("acme.py", "X = 1\n", ["acme.py", "LEAK_CASES"]),
    "YAML that is not a list": ("acme.yaml", "id: acme\n", ["acme.yaml", "expected a list"]),
    "unsupported file type": ("acme.txt", "hello\n", ["acme.txt", "unsupported", ".jsonl"]),
    "Python file nested 100,000 deep": ("acme.py", "X = " + "[" * 100_000 + "]" * 100_000,
                                        ["acme.py:1", "import failed", "too many nested"]),
}

# Hostile files, as bytes: each must be refused by the loader, not crash it.
HOSTILE_CASE_FILES = {
    "invalid UTF-8": ("acme.jsonl", json.dumps(GOOD).encode() + b"\n" + b'{"id": "\xff\xfe"}',
                      ["acme.jsonl:2", "0xff is not UTF-8", "UTF-8 text"]),
    "binary content": ("acme.yaml", b"- id: acme\n" + bytes(range(256)),
                       ["acme.yaml:2", "NUL byte", "binary", "expected UTF-8 text"]),
    "JSON nested 100,000 deep": ("acme.jsonl", b"[" * 100_000 + b"]" * 100_000,
                                 ["acme.jsonl:1", "more than 20 levels deep", "record needs 3"]),
    "YAML nested 100,000 deep": ("acme.yaml", b"- " + b"[" * 100_000 + b"]" * 100_000,
                                 ["acme.yaml:1", "invalid YAML", "more than 20 levels deep"]),
    "YAML alias bomb": ("acme.yaml", b"".join(
        b"- &a%d [" % i + b", ".join([b"*a%d" % (i - 1)] * 9) + b"]\n" for i in range(1, 12)
    ).replace(b"*a0", b"lol"), ["acme.yaml:2", "invalid YAML", "alias *a1", "write the value"]),
    "record over the size cap": ("acme.jsonl", json.dumps(
        {**GOOD, "text": "#" * 70_000 + "\n" + GOOD["text"]}).encode(),
        ["acme.jsonl:1", "characters of strings", "at most 65536"]),
}


@pytest.fixture
def cases_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "cases"
    directory.mkdir()
    for name in ("forget.jsonl", "holdout.jsonl"):
        shutil.copy(ROOT / "cases" / name, directory / name)
    return directory


@pytest.mark.slow
def test_copied_cases_directory_is_accepted(tmp_path: Path, cases_dir: Path) -> None:
    """The control: the copies alone collect the benchmark."""
    returncode, lines = collect(tmp_path, f"--cases-dir={cases_dir}", "-k", "name-fixture-0001")
    assert returncode == 0, "\n".join(lines[-20:])


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(CASE_FILES))
def test_bad_case_file(tmp_path: Path, cases_dir: Path, mistake: str) -> None:
    name, text, fragments = CASE_FILES[mistake]
    (cases_dir / name).write_text(text + ("" if text.endswith("\n") else "\n"))
    assert_one_line(tmp_path, [f"--cases-dir={cases_dir}"], *fragments)


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(HOSTILE_CASE_FILES))
def test_hostile_case_file(tmp_path: Path, cases_dir: Path, mistake: str) -> None:
    name, content, fragments = HOSTILE_CASE_FILES[mistake]
    (cases_dir / name).write_bytes(content)
    assert_one_line(tmp_path, [f"--cases-dir={cases_dir}"], *fragments)


def test_cases_directory_without_the_forget_set(tmp_path: Path, cases_dir: Path) -> None:
    (cases_dir / "forget.jsonl").unlink()
    assert_one_line(tmp_path, [f"--cases-dir={cases_dir}"],
                    "--cases-dir", str(cases_dir), "lacks forget.jsonl", "holdout.jsonl")


# --- Output directories ------------------------------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in which nobody can create files. Root ignores permission bits, so for root it
    is a read-only tmpfs, mounted here and unmounted after the test."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        try:
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "leakbench-ro",
                                      str(directory)], capture_output=True, text=True, timeout=30)
        except OSError as err:
            pytest.skip(f"running as root, and cannot run mount for a read-only tmpfs: {err}")
        if mounted.returncode != 0:
            pytest.skip(f"running as root, and cannot mount a read-only tmpfs: "
                        f"{mounted.stderr.strip()}")
    else:
        directory.chmod(0o555)
    try:
        if _can_create_a_file(directory):
            pytest.skip(f"{directory} is writable despite its read-only mode")
        yield directory
    finally:
        if as_root:
            subprocess.run(["umount", str(directory)], check=True, timeout=30)
        else:
            directory.chmod(0o755)


def _can_create_a_file(directory: Path) -> bool:
    try:
        (directory / "probe").touch()
    except OSError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--cache-dir", "--report-dir"])
@pytest.mark.parametrize("made", [True, False], ids=["existing", "to be made"])
def test_read_only_output_directory(tmp_path: Path, read_only_dir: Path, option: str,
                                    made: bool) -> None:
    directory = read_only_dir if made else read_only_dir / "out"
    assert_one_line(tmp_path, [f"{option}={directory}"],
                    option, repr(str(directory)), "is not writable", "choose a writable")


def test_read_only_cache_directory_from_the_environment(tmp_path: Path,
                                                        read_only_dir: Path) -> None:
    directory = read_only_dir / "cache"
    assert_one_line(tmp_path, ["--cache-dir="], "LEAKBENCH_CACHE_DIR", repr(str(directory)),
                    "is not writable", env={"LEAKBENCH_CACHE_DIR": str(directory)})


def test_harness_tests_check_no_output_directory(read_only_dir: Path) -> None:
    """`pytest tests` runs without the benchmark's plugin: its options are unknown there, and a
    read-only cache directory in the environment is neither checked nor written."""
    command = [sys.executable, "-m", "pytest", "tests/test_options.py", "-q", *QUIET_PLUGINS,
               "-k", "test_parse_algorithms"]
    env = {**ENV, "LEAKBENCH_CACHE_DIR": str(read_only_dir / "cache")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    refused = subprocess.run([*command, f"--report-dir={read_only_dir / 'reports'}"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR
    assert "unrecognized arguments: --report-dir" in refused.stderr
    assert not any(read_only_dir.iterdir())
