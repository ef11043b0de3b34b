"""What the child does between fork and exec, to confine itself before the program starts: join
the run's cgroup, set its rlimits, enter the namespaces, write the program on its scratch, take
the run's uid and give up any way back to privileges.

This runs as ``preexec_fn``, which the subprocess documentation warns about in threaded
programs; the launcher that forks has no other thread (`leakbench.sandbox.launcher`), and
everything used here (libc functions, paths, limits) is resolved before the fork."""

from __future__ import annotations

import os
import resource
import signal

from leakbench.sandbox.cgroup import join
from leakbench.sandbox.limits import UID_BASE, Isolation, Limits
from leakbench.sandbox.linux import PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, check, libc
from leakbench.sandbox.namespaces import enter_namespaces


def confine(
    limits: Limits,
    plan: Isolation,
    *,
    hidden: str | None,
    shared: tuple[str, ...],
    cgroup_procs: tuple[str, ...],
    program: str | None,
    owned_paths: tuple[str, ...],
) -> None:
    """Confine the child before it execs. ``program``: the source to write into the working
    directory (``owned_paths``: the directory, its ``tmp``, the program file) on the private
    scratch, which exists only from here on; None when the caller wrote them on the host."""
    join(cgroup_procs)  # first, so that all the child does is counted
    _set_limits(limits)
    if plan.namespaces:
        enter_namespaces(plan.separate_uid, hidden, shared, limits.scratch_bytes)
    if program is not None:
        workdir, tmpdir, program_file = owned_paths
        os.mkdir(workdir, 0o700)
        os.mkdir(tmpdir, 0o700)
        with open(program_file, "w", encoding="utf-8") as file:
            file.write(program)
        os.chdir(workdir)
    if plan.separate_uid:
        uid = UID_BASE + os.getpid()
        for path in owned_paths:
            os.chown(path, uid, uid)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    # Set after setuid, which clears it.
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")


def _set_limits(limits: Limits) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
