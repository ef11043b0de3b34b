"""A cgroup of each run's own (`Cgroup`), below the caller's, found in the cgroup v1 or v2
hierarchy that this process belongs to; and `join`, which moves the child into it."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import time

from leakbench.sandbox.limits import Limits

_CGROUP_TEARDOWN_S = 5.0


class Cgroup:
    """The run's own control group, below the caller's (one per controller in cgroup v1, one in
    v2). It caps the memory and the number of processes of the program and all its children
    together, which per-process rlimits cannot, counts the kernel's OOM kills at that cap, and
    holds every process of the run, whatever its uid or session, for the teardown."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.directories: dict[str, str] = {}  # controller ("" in v2) -> directory

    @classmethod
    def create(cls, limits: Limits) -> Cgroup:
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


def join(cgroup_procs: tuple[str, ...]) -> None:
    """Move this process (the child, before it execs) into the cgroup of ``cgroup_procs``."""
    for procs in cgroup_procs:
        _write(procs, os.getpid())
