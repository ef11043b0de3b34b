"""The entry points: run one program, or many in parallel, once the caller has opted in to
executing generated code."""

from __future__ import annotations

import atexit
import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from leakbench.sandbox.launcher import Launcher
from leakbench.sandbox.limits import Limits
from leakbench.sandbox.machine import isolation
from leakbench.sandbox.result import Result

ALLOW_ENV = "LEAKBENCH_ALLOW_CODE_EXECUTION"


class ExecutionNotAllowed(RuntimeError):
    pass


_DEFAULT_LIMITS = Limits()
_per_thread = threading.local()  # each calling thread's launcher: `run_program` runs in parallel


def run_program(source: str, limits: Limits = _DEFAULT_LIMITS, *, allow_execution: bool = False,
                reports_verdict: bool = False) -> Result:
    """How `source` ended. A plain program passes when it exits with status 0. With
    ``reports_verdict`` (the programs of `leakbench.functional`) it passes only when it also
    reports "passed" on the verdict channel, with the nonce of this run (`VerdictChannel`)."""
    _require_opt_in(allow_execution)
    launcher = getattr(_per_thread, "launcher", None)
    if launcher is None or not launcher.alive():
        launcher = _per_thread.launcher = Launcher()
        atexit.register(launcher.close)
    return launcher.run(source, limits, isolation(), reports_verdict)


def run_programs(
    sources: Sequence[str],
    limits: Limits = _DEFAULT_LIMITS,
    *,
    workers: int = 1,
    allow_execution: bool = False,
    reports_verdict: bool = False,
) -> list[Result]:
    """Run each source in its own sandbox; results in the order of sources. Each of the
    ``workers`` threads drives one launcher, which runs one child process at a time."""
    _require_opt_in(allow_execution)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    plan = isolation()
    idle: queue.SimpleQueue[Launcher] = queue.SimpleQueue()
    launchers = [Launcher() for _ in range(workers)]
    for launcher in launchers:
        idle.put(launcher)

    def run_one(source: str) -> Result:
        launcher = idle.get()
        try:
            return launcher.run(source, limits, plan, reports_verdict)
        finally:
            idle.put(launcher)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run_one, sources))
    finally:
        for launcher in launchers:
            launcher.close()


def _require_opt_in(allow_execution: bool) -> None:
    if not (allow_execution or os.environ.get(ALLOW_ENV) == "1"):
        raise ExecutionNotAllowed(
            f"executing generated code is off: pass allow_execution=True or set {ALLOW_ENV}=1"
        )
