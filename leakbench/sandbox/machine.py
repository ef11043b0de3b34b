"""What this machine allows a sandboxed run, probed once per process (`isolation`), and the
fingerprint of everything besides a program's text that decides how it ends here."""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from leakbench.sandbox.cgroup import Cgroup, join
from leakbench.sandbox.limits import Isolation, Limits
from leakbench.sandbox.namespaces import (
    PYTHON,
    enter_namespaces,
    scratch_dirs,
    untraversable_ancestor,
)
from leakbench.sandbox.result import one_line


@functools.cache
def isolation() -> Isolation:
    """Probe once per process whether a child can enter the namespaces the sandbox wants, and
    whether a run can have a cgroup of its own and put its child in it."""
    separate_uid = os.geteuid() == 0
    enter = functools.partial(
        enter_namespaces, separate_uid, untraversable_ancestor(), scratch_dirs(), 1 << 20
    )
    namespaces = _starts(enter)
    try:
        cgroup = Cgroup.create(Limits())
    except OSError as exc:
        return Isolation(separate_uid, namespaces, "none", one_line(str(exc)))
    try:
        joined = _starts(functools.partial(join, cgroup.procs_files))
    finally:
        cgroup.remove()
    if not joined:
        return Isolation(separate_uid, namespaces, "none", "cannot move a child into a cgroup")
    return Isolation(separate_uid, namespaces, cgroup.version)


def _starts(preexec: Callable[[], None]) -> bool:
    """Whether an empty program starts after ``preexec`` ran in its process."""
    try:
        subprocess.run([PYTHON, "-S", "-c", ""], preexec_fn=preexec, env={},
                       stdin=subprocess.DEVNULL, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def fingerprint(limits: Limits) -> dict:
    """Everything besides a program's text that decides how it ends here: the limits, the
    interpreter it runs under (path and version), what isolation the machine allows, and the
    code of every module of this package. Two runs with the same fingerprint judge the same
    program alike, unless it times out (load) or the sandbox fails (status "error")."""
    code = hashlib.sha256()
    for module in sorted(Path(__file__).parent.glob("*.py")):
        code.update(module.name.encode() + b"\0" + module.read_bytes())
    return {"limits": asdict(limits), "interpreter": PYTHON,
            "python": sys.version, "isolation": asdict(isolation()), "code": code.hexdigest()}
