"""The verdict cache: a kept verdict is returned without running the program, anything but a whole
entry of the same sandbox is a miss, and --rebuild runs every program again."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from leakbench import humaneval, sandbox
from leakbench.probes import FunctionalTask
from leakbench.sandbox import Limits, Result
from leakbench.verdicts import VerdictCache, run_task

LIMITS = Limits(wall_s=20.0, cpu_s=20)
PROBLEM = humaneval.load_problems()[0]
TASK = FunctionalTask("humaneval", "HumanEval-000", PROBLEM.prompt, PROBLEM)
RIGHT = PROBLEM.canonical_solution
WRONG = "    return not True\n"


@pytest.fixture
def cache(tmp_path: Path) -> VerdictCache:
    return VerdictCache(tmp_path / "verdicts", LIMITS)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The programs the sandbox is asked to run (it still runs them)."""
    programs: list[str] = []
    real = sandbox.run_program

    def counting(source, limits, **options):
        programs.append(source)
        return real(source, limits, **options)

    monkeypatch.setattr(sandbox, "run_program", counting)
    return programs


def entry_path(cache: VerdictCache, completion: str) -> Path:
    return cache.directory / f"{cache.key(TASK.program(completion))}.json"


@pytest.mark.parametrize("completion, status", [(RIGHT, "passed"), (WRONG, "failed")])
def test_second_run_returns_the_kept_verdict_without_running(cache, runs, completion, status):
    first = run_task(TASK, completion, cache)
    second = run_task(TASK, completion, cache)
    assert first.status == status and len(runs) == 1
    assert (second.status, second.reason) == (first.status, first.reason)


def test_an_early_exit_is_kept_as_a_failure(cache, runs):
    early_exit = "    __import__('sys').exit(0)\n"
    assert run_task(TASK, early_exit, cache).status == "failed"
    assert run_task(TASK, early_exit, cache).status == "failed"
    assert len(runs) == 1


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],                       # half-written
    lambda text: "",                                           # empty (renamed, never flushed)
    lambda text: text.replace('"failed"', '"passed"'),         # edited verdict
    lambda text: json.dumps({**json.loads(text), "key": "0" * 64}),  # another entry's content
    lambda text: "[1, 2]",                                     # valid JSON, not an entry
])
def test_a_damaged_entry_is_ignored_and_written_anew(cache, runs, damage):
    run_task(TASK, WRONG, cache)
    path = entry_path(cache, WRONG)
    intact = path.read_text()
    path.write_text(damage(intact))
    assert cache.get(TASK.program(WRONG)) is None
    assert run_task(TASK, WRONG, cache).status == "failed"
    assert len(runs) == 2
    assert cache.get(TASK.program(WRONG)).status == "failed"


def test_only_verdicts_the_program_decides_are_kept(cache):
    program = TASK.program(RIGHT)
    for status in ("timeout", "error"):
        cache.put(program, Result(status, "not the program's doing", 20.0, "", ""))
        assert cache.get(program) is None
    cache.put(program, Result("memory", "MemoryError", 0.1, "", ""))
    assert cache.get(program).status == "memory"


def test_rebuild_ignores_kept_verdicts_and_replaces_them(cache, runs):
    program = TASK.program(RIGHT)
    cache.put(program, Result("failed", "kept from before", 0.1, "", ""))
    rebuild = VerdictCache(cache.directory, LIMITS, reuse=False)
    assert rebuild.get(program) is None
    assert run_task(TASK, RIGHT, rebuild).status == "passed"
    assert len(runs) == 1
    assert cache.get(program).status == "passed"


def test_other_limits_or_python_use_other_keys(cache, monkeypatch):
    program = TASK.program(RIGHT)
    cache.put(program, Result("passed", "", 0.1, "", ""))
    other_limits = VerdictCache(cache.directory, replace(LIMITS, memory_bytes=1 << 30))
    assert other_limits.key(program) != cache.key(program)
    assert other_limits.get(program) is None
    monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    other_python = VerdictCache(cache.directory, LIMITS)
    assert other_python.key(program) != cache.key(program)
    assert other_python.get(program) is None


def test_the_key_is_the_program_not_the_completion(cache):
    assert cache.key(TASK.program(RIGHT)) != cache.key(TASK.program(WRONG))
    assert cache.key(TASK.program(RIGHT + "\ndef unused():\n    pass\n")) == \
        cache.key(TASK.program(RIGHT))  # humaneval.truncate cuts at the next definition


def test_an_unwritable_cache_does_not_change_the_verdict(tmp_path, runs):
    blocked = tmp_path / "file"
    blocked.write_text("")
    cache = VerdictCache(blocked / "verdicts", LIMITS)
    assert run_task(TASK, WRONG, cache).status == "failed"
    assert run_task(TASK, WRONG, cache).status == "failed"
    assert len(runs) == 2
