"""The namespaces a run's child enters: a network and an IPC namespace of its own and, as root,
a mount namespace in which the interpreter stays reachable while the rest of a home directory
it lies in is hidden, and every directory all users may write to is covered by one private
scratch tmpfs."""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import sys

from leakbench.sandbox.linux import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    check,
    libc,
)

PREFIX = os.path.realpath(sys.base_prefix)
PYTHON = os.path.join(PREFIX, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
"""The base interpreter (not a virtualenv's) the programs run under; the mount namespace keeps
its prefix reachable."""

SCRATCH_ROOT = os.path.realpath("/tmp")
"""Where the run's working directory is, in its mount namespace: on its scratch tmpfs."""
_SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
_SHARED_WRITABLE_PARENTS = ("/", "/var", "/run", "/dev")
"""Where every user may write on usual Linux machines, and where else to look for directories
like them (`scratch_dirs`). As root, each run gets all of them empty and private: directories of
one tmpfs of at most ``Limits.scratch_bytes`` in its mount namespace. What it leaves there goes
with it, and cannot fill the disk, or the memory behind /dev/shm, for the runs after it."""


def enter_namespaces(
    privileged: bool, hidden: str | None, shared: tuple[str, ...], scratch_bytes: int
) -> None:
    """Enter new network, IPC (SysV objects and POSIX message queues of its own, gone with it)
    and mount namespaces; as root, make the interpreter reachable again under ``hidden``, the
    directory above it that other users cannot traverse, and cover the directories every user
    may write to (``shared``) with one private scratch tmpfs of ``scratch_bytes``.

    Without root, a user namespace is what makes the others possible; the interpreter then
    belongs to the caller, who can reach it anyway."""
    if not privileged:
        check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
        return
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    if hidden is not None:
        _cover(hidden, (PREFIX,), b"mode=0755,size=64k")
    _cover_with_scratch(shared, scratch_bytes)


def _cover_with_scratch(directories: tuple[str, ...], size: int) -> None:
    """Mount one tmpfs of ``size`` bytes on the first of ``directories`` and put an empty
    directory of it on each, so that together they hold at most ``size`` bytes. The first is
    covered last, by its own ``.0``: it hides the others' sources, not the mounts made from
    them. The interpreter is bound back if it lies under one of them."""
    top = directories[0]
    prefix = os.open(PREFIX, os.O_PATH | os.O_DIRECTORY)
    try:
        check(
            libc.mount(b"tmpfs", top.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                        f"mode=0755,size={size}".encode()),
            f"mount tmpfs on {top}",
        )
        for index, directory in reversed(list(enumerate(directories))):
            part = os.path.join(top, f".{index}")
            os.mkdir(part)
            os.chmod(part, 0o1777)
            check(libc.mount(part.encode(), directory.encode(), None, MS_BIND, None),
                   f"bind scratch on {directory}")
        if any(os.path.commonpath([PREFIX, d]) == d for d in directories):
            os.makedirs(PREFIX, mode=0o755, exist_ok=True)
            check(libc.mount(f"/proc/self/fd/{prefix}".encode(), PREFIX.encode(), None,
                               MS_BIND, None), f"bind {PREFIX}")
    finally:
        os.close(prefix)


@functools.cache
def scratch_dirs() -> tuple[str, ...]:
    """The directories every user may write to here, symlinks resolved, `SCRATCH_ROOT` first:
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
    return (SCRATCH_ROOT, *sorted(found - {SCRATCH_ROOT}))


def _cover(directory: str, keep: tuple[str, ...], options: bytes) -> None:
    """Mount an empty tmpfs on ``directory``, then bind the paths of ``keep`` that lie under it
    back in place (opened before the mount hides them)."""
    kept = [
        (path, os.open(path, os.O_PATH | os.O_DIRECTORY))
        for path in keep
        if os.path.commonpath([path, directory]) == directory
    ]
    try:
        check(
            libc.mount(b"tmpfs", directory.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options),
            f"mount tmpfs on {directory}",
        )
        for path, fd in kept:
            os.makedirs(path, mode=0o755, exist_ok=True)
            source = f"/proc/self/fd/{fd}".encode()
            check(libc.mount(source, path.encode(), None, MS_BIND, None), f"bind {path}")
    finally:
        for _, fd in kept:
            os.close(fd)


@functools.cache
def untraversable_ancestor() -> str | None:
    """The highest directory above the interpreter that other users cannot enter, if any."""
    path = "/"
    for part in PREFIX.strip("/").split("/"):
        path = os.path.join(path, part)
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return path
    return None
