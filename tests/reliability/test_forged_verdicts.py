"""Forging a functional verdict: completions that try to pass a task without its checks having
run, each through the benchmark's own path (`verdicts.run_task` -> the sandbox with the default
limits -> `leakbench.checker`), on a HumanEval problem and a capability task. None may pass, a
cached verdict may not either, and a run of them leaves nothing behind on the host.
"""

from __future__ import annotations

import textwrap

import pytest
from reliability_helpers import host_state, wait_for_clean

from leakbench import capability, humaneval, sandbox
from leakbench.probes import FunctionalTask
from leakbench.sandbox import Limits
from leakbench.verdicts import VerdictCache, run_task

PROBLEM = humaneval.load_problems()[0]
CAPABILITY = capability.probe_tasks()[0]
TASKS = {
    "humaneval": FunctionalTask("humaneval", "HumanEval-000", PROBLEM.prompt, PROBLEM),
    "capability": FunctionalTask("capability", CAPABILITY.task_id, CAPABILITY.prompt, CAPABILITY),
}
REFERENCES = {"humaneval": PROBLEM.canonical_solution, "capability": CAPABILITY.solution}


def body(code: str) -> str:
    """`code` as the function's body (indented four spaces)."""
    return textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", "    ")


def module(code: str) -> str:
    """A body that returns a wrong answer, then `code` at module level after the function."""
    return "    return None\n\n\n" + textwrap.dedent(code).strip("\n") + "\n"


_ESCAPE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
parent = os.getppid()
tries = {
    "ptrace": lambda: libc.ptrace(0x4206, parent, 0, 0) == 0,          # PTRACE_SEIZE
    "pidfd_getfd": lambda: libc.syscall(438, os.pidfd_open(parent), int(sys.argv[-2]), 0) >= 0,
    "/proc/fd": lambda: os.open(f"/proc/{parent}/fd/{sys.argv[-2]}", os.O_WRONLY) >= 0,
    "/proc/mem": lambda: len(open(f"/proc/{parent}/mem", "rb").read(1)) >= 0,
}
for name, attempt in tries.items():
    try:
        if attempt():
            print("ESCAPED", name, flush=True)
    except OSError:
        pass
for fd in range(3, 64):
    try:
        os.write(fd, b"0123456789abcdef0123456789abcdef passed ")
    except OSError:
        pass
"""

FORGERIES = {
    "sys.exit(0) in the body": body("import sys\nsys.exit(0)"),
    "os._exit(0) in the body": body("import os\nos._exit(0)"),
    "SystemExit(0) at module level": module("raise SystemExit(0)"),
    "an atexit hook that exits 0": module("import atexit, os\natexit.register(os._exit, 0)"),
    "a finally that exits 0": body("try:\n    return None\nfinally:\n    import os\n"
                                   "    os._exit(0)"),
    "an excepthook that exits 0": module("import os, sys\n"
                                         "sys.excepthook = lambda *exc: os._exit(0)"),
    "AssertionError replaced in builtins": module(
        "import builtins\nbuiltins.AssertionError = type('Quiet', (BaseException,), {})"),
    "a result whose __eq__ is always True": body(
        "class Equal(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\nreturn Equal(0)"),
    "check() replaced in builtins and __main__": module(
        "import builtins, sys\nbuiltins.check = lambda candidate: None\n"
        "sys.modules['__main__'].check = lambda candidate: None"),
    "a trace hook that exits when check() runs": module(
        "import os, sys\nsys.settrace(lambda frame, event, arg: os._exit(0) "
        "if frame.f_code.co_name == 'check' else None)"),
    "re-executed with -O": module(
        "import os, sys\nos.execv(sys.executable, [sys.executable, '-O', *sys.argv])"),
    "re-executed with PYTHONOPTIMIZE=2": module(
        "import os, sys\nos.execve(sys.executable, [sys.executable, *sys.argv],\n"
        "          {**os.environ, 'PYTHONOPTIMIZE': '2'})"),
    "the checker's source read for a marker, then printed": module(
        "import sys\nsource = open(sys.argv[0]).read()\nprint(source[-2000:])\n"
        "sys.stderr.write(source[-2000:])"),
    "the verdict channel written, stolen, the checker's memory read": module(_ESCAPE),
    "the checker killed": module("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"),
}


@pytest.mark.parametrize("source", sorted(TASKS))
@pytest.mark.parametrize("route", sorted(FORGERIES))
def test_a_forged_verdict_does_not_pass(tmp_path, route: str, source: str) -> None:
    cache = VerdictCache(tmp_path / "verdicts", Limits())
    result = run_task(TASKS[source], FORGERIES[route], cache)
    assert result.status != "passed", f"{route}: {result}"
    assert "ESCAPED" not in result.stdout, f"{route}: {result.stdout}"
    again = run_task(TASKS[source], FORGERIES[route], cache)  # the kept verdict, if any
    assert again.status != "passed"


@pytest.mark.parametrize("source", sorted(TASKS))
def test_the_reference_solution_passes_on_the_same_path(tmp_path, source: str) -> None:
    cache = VerdictCache(tmp_path / "verdicts", Limits())
    result = run_task(TASKS[source], REFERENCES[source], cache)
    assert result.status == "passed", result


def test_a_failure_names_the_failed_check(tmp_path) -> None:
    result = run_task(TASKS["humaneval"], "    return not True\n",
                      VerdictCache(tmp_path / "verdicts", Limits()))
    assert (result.status, result.reason) == ("failed", "AssertionError")


def test_the_forgeries_leave_nothing_behind(tmp_path) -> None:
    before = host_state()
    cache = VerdictCache(tmp_path / "verdicts", Limits(), reuse=False)
    for task in TASKS.values():
        for completion in FORGERIES.values():
            assert run_task(task, completion, cache).status != "passed"
    left = wait_for_clean(before)
    assert not left, f"left behind: {left}"


# --- The verdict channel itself, with programs that speak it -----------------------------------

_REPORT = """
import os, sys
verdict_fd, nonce_fd = int(sys.argv[-2]), int(sys.argv[-1])
nonce = os.read(nonce_fd, 32).decode()
os.write(verdict_fd, ({message}).encode())
sys.exit({status})
"""


@pytest.mark.parametrize(("message", "status", "expected"), [
    ('f"{nonce} passed "', 0, ("passed", "")),
    ('f"{nonce} failed AssertionError"', 1, ("failed", "AssertionError")),
    ('f"{nonce} passed "', 1, ("failed", "its checks passed, then it ended with exit status 1")),
    ('"0" * 32 + " passed "', 0, ("failed", "ended without its checks reporting a verdict")),
    ('f"{nonce} excellent "', 0, ("failed", "ended without its checks reporting a verdict")),
    ('""', 0, ("failed", "ended without its checks reporting a verdict")),
])
def test_only_a_report_with_the_nonce_and_a_clean_exit_passes(message, status, expected) -> None:
    result = sandbox.run_program(_REPORT.format(message=message, status=status), Limits(),
                                 allow_execution=True, reports_verdict=True)
    assert (result.status, result.reason) == expected


def test_without_the_channel_a_functional_program_cannot_pass() -> None:
    """A caller that forgets ``reports_verdict`` fails closed: even the reference fails."""
    result = sandbox.run_program(TASKS["humaneval"].program(REFERENCES["humaneval"]), Limits(),
                                 allow_execution=True)
    assert result.status == "failed"


def test_an_exception_of_the_function_reaches_the_checks_as_itself(tmp_path) -> None:
    """A check may expect the function to raise: the checker raises the same built-in type."""
    prompt = 'def parse(text):\n    """The integer that text spells."""\n'
    checks = "try:\n    parse('x')\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError\n"
    task = FunctionalTask("capability", "raises", prompt,
                          capability.Task("raises", prompt, "", checks, "parse"))
    cache = VerdictCache(tmp_path / "verdicts", Limits())
    assert run_task(task, "    return int(text)\n", cache).status == "passed"
    failed = run_task(task, "    return 1 / 0\n", cache)
    assert (failed.status, failed.reason) == ("failed", "ZeroDivisionError: division by zero")
