"""The program a functional test runs: a task's checks against the model's function, judged by
`leakbench.checker` in the sandbox, and how its verdict is read.

A task is split by trust. The *setup* (the prompt: signature, docstring and the helpers a check
may call) and the *checks* come from the benchmark; the *subject* (the prompt with the model's
body) is untrusted and runs in a process of its own, so the verdict comes from the checks having
run, whatever the completion does (leakbench/checker.py says how). Run such a program with
``leakbench.sandbox.run_program(..., reports_verdict=True)``; without it, its exit status is
still 0 only after a pass.
"""

from __future__ import annotations

from importlib import resources

_CHECKER = resources.files("leakbench").joinpath("checker.py").read_text(encoding="utf-8")


def program(setup: str, subject: str, checks: str, entry_point: str) -> str:
    """The sandbox program that passes exactly when `checks` pass against `entry_point` as
    `subject` defines it. `setup` must run on its own (a prompt that ends after its docstring
    does). The three texts are embedded as string literals and compiled only by the process
    meant to run them."""
    return (f"{_CHECKER}\n\nimport sys as _sys\n"
            f"main({setup!r}, {subject!r}, {checks!r}, {entry_point!r}, "
            f"int(_sys.argv[-2]), int(_sys.argv[-1]))\n")
