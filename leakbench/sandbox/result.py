"""How a sandboxed program ended: its `Result`, and the status and reason its exit means
(`classify`)."""

from __future__ import annotations

import errno
import signal
from dataclasses import dataclass

from leakbench.sandbox.limits import Limits

_REASON_CHARS = 200


@dataclass(frozen=True)
class Result:
    """How one program ended.

    status: "passed" (exit 0), "failed" (an exception, a non-zero exit, a signal, the file size
    limit), "timeout" (wall clock or CPU limit), "memory" (MemoryError, or the kernel killed a
    process at the whole program's memory limit) or "error" (the sandbox itself failed). stdout
    keeps its first ``output_bytes``, stderr its last ones, because the exception that decides
    the verdict is at its end.
    """

    status: str
    reason: str
    duration_s: float
    stdout: str
    stderr: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def classify(
    returncode: int,
    timed_out: bool,
    cpu_s: float,
    stderr: str,
    limits: Limits,
    *,
    oom_killed: bool = False,
    scratch_capped: bool = False,
) -> tuple[str, str]:
    """The status and reason of a program that ended so. ``oom_killed``: the kernel killed one
    of its processes at the run's cgroup limit; ``scratch_capped``: every place it could write
    to was its scratch tmpfs, so a full disk means its own cap."""
    if oom_killed:
        return "memory", f"whole-program memory limit of {limits.memory_bytes} bytes"
    if timed_out:
        return "timeout", f"wall-clock limit of {limits.wall_s:g} s"
    if returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu_s >= limits.cpu_s):
        return "timeout", f"cpu time limit of {limits.cpu_s} s"
    if returncode == -signal.SIGXFSZ:
        return "failed", f"file size limit of {limits.file_bytes} bytes"
    if returncode < 0:
        return "failed", f"killed by signal {-returncode} ({signal.strsignal(-returncode)})"
    if returncode == 0:
        return "passed", ""
    last_line = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    if last_line.startswith("MemoryError"):
        return "memory", one_line(last_line)
    if f"[Errno {errno.EFBIG}]" in last_line:
        return "failed", f"file size limit of {limits.file_bytes} bytes"
    if scratch_capped and f"[Errno {errno.ENOSPC}]" in last_line:
        return "failed", f"scratch space limit of {limits.scratch_bytes} bytes"
    return "failed", one_line(last_line or f"exit status {returncode}")


def one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 3] + "..."
