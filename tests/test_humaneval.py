"""HumanEval through the sandbox: the reference solutions all pass, the bare prompts all fail,
so the harness measures the completion and nothing else."""

from __future__ import annotations

import pytest

from leakbench.humaneval import Problem, load_problems, program, task_slug, truncate
from leakbench.sandbox import Limits, run_programs

# Generous against a busy 2-core machine; the slowest reference solution takes well under 1 s.
LIMITS = Limits(wall_s=20.0, cpu_s=20)


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return load_problems()


def test_loads_164_problems_with_unique_ids(problems: list[Problem]) -> None:
    assert len(problems) == 164
    assert len({p.task_id for p in problems}) == 164
    assert {task_slug(p.task_id) for p in problems} == {f"HumanEval-{i:03d}" for i in range(164)}
    assert all(p.prompt.endswith("\n") and p.entry_point in p.prompt for p in problems)


def failures(problems: list[Problem], completions: list[str]) -> dict[str, str]:
    sources = [program(p, c) for p, c in zip(problems, completions)]
    results = run_programs(sources, LIMITS, workers=2, allow_execution=True,
                           reports_verdict=True)
    return {p.task_id: f"{r.status}: {r.reason}" for p, r in zip(problems, results) if not r.passed}


@pytest.mark.slow
def test_all_canonical_solutions_pass(problems: list[Problem]) -> None:
    assert failures(problems, [p.canonical_solution for p in problems]) == {}


@pytest.mark.slow
def test_all_bare_prompts_fail(problems: list[Problem]) -> None:
    verdicts = failures(problems, [""] * len(problems))
    assert len(verdicts) == 164
    assert all(verdict.startswith("failed: ") for verdict in verdicts.values())  # no sandbox fault


@pytest.mark.parametrize(
    ("completion", "kept"),
    [
        ("    return 1\n", "    return 1\n"),
        ("    return 1\n\ndef helper():\n    pass\n", "    return 1\n"),
        ("    return 1\nclass Extra:\n    pass\n", "    return 1"),
        ("    return 1\n\n\nif __name__ == '__main__':\n    main()\n", "    return 1\n\n"),
        ("    return 1\nprint(f(2))\n", "    return 1"),
        ("    return 1\n# tests\nassert f(1)\n", "    return 1"),
        ("    return 1\n@cache\ndef g(): pass\n", "    return 1"),
        ("    return 1\n```\nText after the code.\n", "    return 1"),
        ("    # a comment inside the body stays\n    if x:\n        def inner(): pass\n", None),
        ("    return 1\nprint(1)\ndef later(): pass\n", "    return 1"),  # the first stop wins
    ],
)
def test_truncate_cuts_at_the_first_stop_sequence(completion: str, kept: str | None) -> None:
    assert truncate(completion) == (completion if kept is None else kept)


def test_program_checks_the_truncated_completion_apart_from_it(problems: list[Problem]) -> None:
    problem = problems[0]
    source = program(problem, problem.canonical_solution + "\ndef junk():\n    pass\n")
    subject = repr(problem.prompt + problem.canonical_solution)
    checks = repr(f"{problem.test}\ncheck({problem.entry_point})\n")
    assert f"main({problem.prompt!r}, {subject}, {checks}, {problem.entry_point!r}," in source
    assert "def junk" not in source


def test_task_slug_pads_the_number() -> None:
    assert task_slug("HumanEval/42") == "HumanEval-042"
