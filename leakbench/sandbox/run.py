"""Run one program in a confined child and say how it ended: its working directory, the child
(confined by `leakbench.sandbox.confine`), its output read while it runs and capped, the end of
every process of the run, and the `Result`."""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from leakbench.sandbox.cgroup import Cgroup
from leakbench.sandbox.confine import confine
from leakbench.sandbox.limits import UID_BASE, Isolation, Limits
from leakbench.sandbox.namespaces import PYTHON, SCRATCH_ROOT, scratch_dirs, untraversable_ancestor
from leakbench.sandbox.result import Result, classify, one_line
from leakbench.sandbox.verdict_channel import VerdictChannel

_PROGRAM_FILE = "main.py"
_READ_CHUNK = 1 << 16
_DRAIN_GRACE_S = 1.0

_SOCKET_BLOCKING_PRELUDE = f"""\
import _socket, socket, runpy
class _NoNetwork(socket.socket):
    def __init__(self, *args, **kwargs):
        raise PermissionError("network access is disabled in the LeakBench sandbox")
socket.socket = socket.SocketType = _socket.socket = _NoNetwork
del _NoNetwork
runpy.run_path({_PROGRAM_FILE!r}, run_name="__main__")
"""


def run(source: str, limits: Limits, plan: Isolation, reports_verdict: bool) -> Result:
    if _has_private_scratch(plan):  # the working directory exists only in the child's namespace
        workdir = os.path.join(SCRATCH_ROOT, f"leakbench-sandbox-{secrets.token_hex(6)}")
    else:
        workdir = os.path.realpath(tempfile.mkdtemp(prefix="leakbench-sandbox-"))
    try:
        return _run_in(workdir, source, limits, plan, reports_verdict)
    except (OSError, subprocess.SubprocessError) as exc:
        return Result("error", one_line(f"sandbox: {type(exc).__name__}: {exc}"), 0.0, "", "")
    finally:
        if not _has_private_scratch(plan):
            _remove_tree(workdir, plan)


def _has_private_scratch(plan: Isolation) -> bool:
    """Whether each run's writable places are a private tmpfs (`leakbench.sandbox.namespaces`)."""
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
        argv = [PYTHON, "-s", "-S", "-B", _PROGRAM_FILE]
    else:
        argv = [PYTHON, "-s", "-S", "-B", "-c", _SOCKET_BLOCKING_PRELUDE]
    channel = VerdictChannel() if reports_verdict else None
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
        cgroup = Cgroup.create(limits) if plan.cgroups != "none" else None
        if cgroup is not None:
            stack.callback(cgroup.remove)
        preexec = functools.partial(
            confine,
            limits,
            plan,
            hidden=untraversable_ancestor(),
            shared=scratch_dirs(),
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
            preexec_fn=preexec,
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
        status, reason = classify(
            child.returncode, timed_out, usage.ru_utime + usage.ru_stime, stderr.text(), limits,
            oom_killed=oom_killed, scratch_capped=private,
        )
        if channel is not None and not timed_out and not oom_killed:
            status, reason = channel.decide(status, reason, child.returncode)
    return Result(status, reason, duration, stdout.text(), stderr.text())


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


def _remove_tree(path: str, plan: Isolation) -> None:
    if not plan.separate_uid:
        # The program ran as the caller and may have left directories it cannot list or enter.
        for directory, subdirectories, _ in os.walk(path):
            for name in subdirectories:
                subdirectory = os.path.join(directory, name)
                if not os.path.islink(subdirectory):
                    os.chmod(subdirectory, stat.S_IRWXU)
    shutil.rmtree(path)
