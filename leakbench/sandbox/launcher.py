"""The launcher: a small process that starts the sandboxed children for one caller thread, because
a fork from a caller holding gigabytes costs tenths of a second (docs/PERFORMANCE.md, "Sandbox").
It is single-threaded, so ``preexec_fn`` (`leakbench.sandbox.confine`) is safe in it."""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys

from leakbench.sandbox.limits import Isolation, Limits
from leakbench.sandbox.result import Result, one_line
from leakbench.sandbox.run import run


class Launcher:
    """A small process that starts the sandboxed children, one at a time, for its caller.

    Starting a child with ``preexec_fn`` (and the reaper, with a uid change) is a fork(), which
    copies the page tables of the caller's whole resident memory, so it costs more the more the
    caller holds (docs/PERFORMANCE.md, "Sandbox"), twice per program. A pytest worker that has
    trained and scored models holds gigabytes. The launcher is a fresh interpreter (started
    without ``preexec_fn``, so with vfork: cheap from any caller) that imports only this package
    and stays small. Requests and results travel pickled over its stdin and stdout; both ends
    are this module."""

    def __init__(self) -> None:
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from leakbench.sandbox.launcher import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, source: str, limits: Limits, plan: Isolation, reports_verdict: bool) -> Result:
        """The program's result, or an "error" result if the launcher died."""
        try:
            pickle.dump((source, limits, plan, reports_verdict), self.process.stdin)
            self.process.stdin.flush()
            return pickle.load(self.process.stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            self.process.kill()
            self.close()
            return Result("error", one_line(f"sandbox: its launcher process died: {exc!r}"),
                          0.0, "", "")

    def close(self) -> None:
        """End the launcher: it exits when its stdin closes (so also when the caller dies)."""
        if self.process.stdin.closed:
            return
        with contextlib.suppress(BrokenPipeError):  # it is dead already: closed all the same
            self.process.stdin.close()
        self.process.wait()
        self.process.stdout.close()


def serve() -> None:
    """The launcher's loop: run each request until the caller closes the pipe. Its stdout is
    the result channel, so anything printed goes to stderr instead."""
    requests, results = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    while True:
        try:
            source, limits, plan, reports_verdict = pickle.load(requests)
        except EOFError:
            return
        pickle.dump(run(source, limits, plan, reports_verdict), results)
        results.flush()
