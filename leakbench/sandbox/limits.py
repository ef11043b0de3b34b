"""What a sandboxed run may use (`Limits`) and what isolation this machine gives it
(`Isolation`, probed by `leakbench.sandbox.machine.isolation`). Both travel with each program
to the launcher process."""

from __future__ import annotations

from dataclasses import dataclass

UID_BASE = 1 << 30
"""A run's uid and gid are UID_BASE + the child's pid: far above regular users and the usual
sub-uid ranges of containers, and unique among the runs alive at one time."""


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
class Isolation:
    """What this machine allows: a fresh uid per run (root only), private namespaces, and a
    cgroup per run (``cgroups`` is "v1", "v2" or "none"; ``no_cgroups_because`` says why none)."""

    separate_uid: bool
    namespaces: bool
    cgroups: str = "none"
    no_cgroups_because: str = ""
