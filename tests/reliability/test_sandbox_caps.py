"""Caps on a whole program, not one process: its memory and process count together (a cgroup per
run), everything it writes (one private scratch tmpfs), and what it could leave on the host
(files where everyone may write, SysV IPC objects, processes, mounts). Each run must leave the
host as it found it (`reliability_helpers.host_state`).

Programs run with the default `Limits()`, as the benchmark runs them."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_helpers import host_state, wait_for_clean, world_writable_dirs

from leakbench import sandbox
from leakbench.sandbox import Limits, Result, cgroup, run_program

DEFAULT = Limits()
# The runs' cgroups sit below this process's own, which is charged for whatever they leave behind
# (a leak of the program below would be 3.3 GiB at least). The other test worker may share that
# cgroup, hence a GiB of slack; the machine's free memory is no measure at all: the host's other
# tenants move it by more than that.
OWN_MEMORY_TOLERANCE = 1 << 30
SHMEM_TOLERANCE = 32 << 20  # tmpfs and shared memory: what a leaked scratch would hold
DISK_TOLERANCE = 256 << 20


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    before = host_state()
    yield
    left = wait_for_clean(before)
    assert not left, f"the run left this behind: {left}"


def needs_cgroups() -> None:
    plan = sandbox.isolation()
    if plan.cgroups == "none":
        pytest.skip(f"no cgroup per run on this machine: {plan.no_cgroups_because}")


def needs_private_scratch() -> None:
    plan = sandbox.isolation()
    if not (plan.separate_uid and plan.namespaces):
        pytest.skip("a private scratch tmpfs needs root and a mount namespace "
                    "(see leakbench.sandbox: what is weaker without root)")


def run(source: str, limits: Limits = DEFAULT) -> Result:
    return run_program(textwrap.dedent(source), limits, allow_execution=True)


def meminfo(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, value = line.split(":")
        if name == field:
            return int(value.split()[0]) << 10
    raise KeyError(field)


def own_memory_usage() -> int:
    """The memory charged to this process's cgroup, where the runs' cgroups are nested."""
    version, parents = cgroup._cgroup_parents()
    directory, name = ((parents["memory"], "memory.usage_in_bytes") if version == "v1"
                       else (parents[""], "memory.current"))
    return int(Path(directory, name).read_text())


def settles(measure: Callable[[], int], target: int, tolerance: int, timeout_s: float = 5.0
            ) -> int:
    """``measure()`` once it is within ``tolerance`` of ``target``, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while abs((value := measure()) - target) > tolerance and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


@pytest.mark.slow
def test_four_processes_of_1_1_gib_stop_at_the_whole_program_memory_limit() -> None:
    """4.4 GiB together, though each process stays far below its 4 GiB address-space limit.
    The default limits, but more time than the default wall clock: a loaded machine may need it
    to write 4.4 GiB of fresh pages (docs/RELIABILITY.md)."""
    needs_cgroups()
    own = own_memory_usage()
    result = run("""
        import os, time
        ready, held = os.pipe()
        for _ in range(3):
            if os.fork() == 0:
                block = b"x" * (1100 << 20)  # written, so resident
                os.write(held, b"1")
                os.close(held)
                time.sleep(60)  # until the run ends
                os._exit(0)
        os.close(held)
        block = b"x" * (1100 << 20)
        count = 0
        while chunk := os.read(ready, 3):  # until each child has its block, or died
            count += len(chunk)
        print(f"{1 + count} blocks of 1.1 GiB held at once")
        """, Limits(wall_s=60, cpu_s=60))
    assert (result.status, result.reason) == (
        "memory", f"whole-program memory limit of {DEFAULT.memory_bytes} bytes"), result
    after = settles(own_memory_usage, own, OWN_MEMORY_TOLERANCE)
    assert after - own < OWN_MEMORY_TOLERANCE, "the program's memory is still charged"


def test_the_run_has_a_cgroup_of_its_own_with_its_limits_and_removed_after() -> None:
    needs_cgroups()
    version, parents = cgroup._cgroup_parents()
    files = ({"memory": "memory.limit_in_bytes", "pids": "pids.max"} if version == "v1"
             else {"": "memory.max pids.max"})
    result = run(f"""
        import os
        own = {{}}
        for line in open("/proc/self/cgroup"):
            _, controllers, path = line.strip().split(":", 2)
            for controller in controllers.split(","):
                own[controller] = path
        for controller, parent in {parents!r}.items():
            directory = os.path.join(parent, os.path.basename(own[controller]))
            for name in {files!r}[controller].split():
                print(directory, open(os.path.join(directory, name)).read().strip())
        """)
    assert result.passed, result
    seen = [line.rsplit(" ", 1) for line in result.stdout.splitlines()]
    assert sorted(value for _, value in seen) == sorted(
        [str(DEFAULT.memory_bytes), str(DEFAULT.processes)])
    for directory in {directory for directory, _ in seen}:
        assert Path(directory).parent.as_posix() in parents.values()
        assert Path(directory).name.startswith("leakbench-")
        assert not Path(directory).exists(), "the run's cgroup outlived it"


PLACES = {"working directory": '"."', "TMPDIR": 'os.environ["TMPDIR"]', "/tmp": '"/tmp"',
          "/dev/shm": '"/dev/shm"', "/var/tmp": '"/var/tmp"', "/run/lock": '"/run/lock"'}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_one_gib_of_scratch_stops_at_the_scratch_limit(place: str) -> None:
    """1 GiB in files of 1 MiB, each below the file size limit: only the scratch cap stops it,
    and neither the host's disk nor its memory keeps anything of it."""
    needs_private_scratch()
    free_disk = shutil.disk_usage("/").free
    shmem = meminfo("Shmem")
    result = run(f"""
        import os
        place = {PLACES[place]}
        for i in range(1024):
            with open(os.path.join(place, f"fill-{{i}}"), "wb") as out:
                out.write(bytes(1 << 20))
        """)
    assert (result.status, result.reason) == (
        "failed", f"scratch space limit of {DEFAULT.scratch_bytes} bytes"), result
    assert settles(lambda: meminfo("Shmem"), shmem, SHMEM_TOLERANCE) - shmem < SHMEM_TOLERANCE
    assert free_disk - shutil.disk_usage("/").free < DISK_TOLERANCE


def test_the_scratch_cap_holds_for_all_places_together() -> None:
    needs_private_scratch()
    third = DEFAULT.scratch_bytes // 3 + (1 << 20)
    result = run(f"""
        import os
        for place in (".", "/tmp", "/dev/shm"):
            for i in range({third >> 20}):  # files below the file size limit
                with open(os.path.join(place, f"part-{{i}}"), "wb") as out:
                    out.write(bytes(1 << 20))
            print("wrote", place, flush=True)
        """)
    assert result.stdout.split("\n")[:2] == ["wrote .", "wrote /tmp"], result
    assert result.reason == f"scratch space limit of {DEFAULT.scratch_bytes} bytes"


def test_files_where_everyone_may_write_do_not_outlive_the_run() -> None:
    needs_private_scratch()
    tag = f"leakbench-caps-{uuid.uuid4().hex}"
    places = ["/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", *world_writable_dirs()]
    try:
        result = run(f"""
            import os
            for place in {places!r}:
                if os.path.isdir(place):
                    open(os.path.join(place, "{tag}"), "w").write("left behind?")
            """)
        assert result.passed, result
        assert [p for p in places if Path(p, tag).exists()] == []
    finally:
        for place in places:
            Path(place, tag).unlink(missing_ok=True)


def sysv_ipc() -> set[str]:
    """The SysV IPC objects on the host, as "kind id"."""
    return {f"{kind} {line.split()[1]}"
            for kind in ("shm", "sem", "msg")
            for line in Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]}


def test_sysv_ipc_objects_do_not_outlive_the_run() -> None:
    needs_private_scratch()
    before = sysv_ipc()
    try:
        result = run("""
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            IPC_PRIVATE, IPC_CREAT = 0, 0o1000
            ids = [libc.shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0o666),
                   libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o666),
                   libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o666)]
            assert min(ids) >= 0, (ids, ctypes.get_errno())
            for kind in ("shm", "sem", "msg"):
                print(kind, len(open(f"/proc/sysvipc/{kind}").read().splitlines()) - 1)
            """)
        assert result.passed, result
        assert result.stdout.split() == ["shm", "1", "sem", "1", "msg", "1"]
        assert sysv_ipc() - before == set()
    finally:
        for kind, number in (entry.split() for entry in sysv_ipc() - before):
            subprocess.run(["ipcrm", {"shm": "-m", "sem": "-s", "msg": "-q"}[kind], number],
                           check=False)
