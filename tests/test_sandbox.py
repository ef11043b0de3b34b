"""The sandbox contains hostile programs: each attack ends as a non-passed result with a reason,
the test process survives, and the run leaves nothing behind (its working directory is gone,
no process of its uid is alive)."""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from leakbench import sandbox
from leakbench.sandbox import (
    ExecutionNotAllowed,
    Isolation,
    Limits,
    Result,
    execution,
    run_program,
    run_programs,
)

LIMITS = Limits(
    wall_s=3.0,
    cpu_s=1,
    memory_bytes=512 << 20,
    file_bytes=1 << 20,
    processes=16,
    output_bytes=4 << 10,
)

# Printed first by every attack, so that the test learns where and as whom the program ran.
_WHO_AND_WHERE = 'import os\nprint("SANDBOX", os.getuid(), os.getcwd(), flush=True)\n'


def run(source: str, limits: Limits = LIMITS) -> tuple[Result, int, str]:
    """Run an attack; return its result, the uid and the working directory it ran with."""
    result = run_program(_WHO_AND_WHERE + textwrap.dedent(source), limits, allow_execution=True)
    _, uid, workdir = result.stdout.splitlines()[0].split()
    assert not os.path.exists(workdir)
    return result, int(uid), workdir


def assert_contained(result: Result) -> None:
    assert not result.passed
    assert result.reason and "\n" not in result.reason


def processes_of(uid: int) -> list[psutil.Process]:
    """Live processes of ``uid``; zombies are dead already and wait only for init to reap them."""
    return [
        p
        for p in psutil.process_iter(["uids", "status"])
        if p.info["uids"] and uid in p.info["uids"] and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


def survivors_of(uid: int, timeout_s: float = 5.0) -> list[psutil.Process]:
    """Processes of ``uid`` still alive after up to ``timeout_s``: a killed process takes a
    moment to exit, longer on a loaded machine, so one look is not enough."""
    deadline = time.monotonic() + timeout_s
    while (alive := processes_of(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_infinite_loop_stops_at_the_cpu_limit() -> None:
    result, _, _ = run("while True:\n    pass\n")
    assert_contained(result)
    assert (result.status, result.reason) == ("timeout", "cpu time limit of 1 s")


def test_sleeping_program_stops_at_the_wall_clock_limit() -> None:
    result, _, _ = run("import time\ntime.sleep(60)\n", Limits(wall_s=1.0, cpu_s=1))
    assert_contained(result)
    assert result.status == "timeout" and "wall-clock" in result.reason
    assert 1.0 <= result.duration_s < 2.0


def test_fork_bomb_is_capped_and_every_fork_is_killed() -> None:
    result, uid, _ = run(
        """
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        Limits(wall_s=1.5, cpu_s=1, processes=16),
    )
    assert_contained(result)
    assert result.status == "timeout"
    if sandbox.isolation().separate_uid:
        assert uid != os.getuid()
        assert survivors_of(uid) == []


def test_ten_gib_allocation_is_a_memory_result() -> None:
    result, _, _ = run("block = bytearray(10 << 30)\n")
    assert_contained(result)
    assert (result.status, result.reason) == ("memory", "MemoryError")


def test_one_gib_file_stops_at_the_file_size_limit() -> None:
    result, _, _ = run("""
        with open("big", "wb") as file:
            for _ in range(1024):
                file.write(bytes(1 << 20))
        """)
    assert_contained(result)
    assert (result.status, result.reason) == ("failed", "file size limit of 1048576 bytes")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def assert_no_connection(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        server.accept()


def test_network_connection_fails_and_reaches_no_listener(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result, _, _ = run(
        f'import socket\nsocket.create_connection(("127.0.0.1", {port}), timeout=2)\n'
    )
    assert_contained(result)
    assert result.reason.startswith("OSError")
    assert_no_connection(listener)


def test_without_namespaces_a_prelude_blocks_sockets(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback of machines that allow no namespace (run here as the caller's uid)."""
    monkeypatch.setattr(
        execution, "isolation", lambda: Isolation(separate_uid=False, namespaces=False)
    )
    port = listener.getsockname()[1]
    result, _, _ = run(
        f'import socket\nsocket.create_connection(("127.0.0.1", {port}), timeout=2)\n'
    )
    assert_contained(result)
    assert result.reason == "PermissionError: network access is disabled in the LeakBench sandbox"
    assert_no_connection(listener)


@pytest.fixture
def sentinel() -> Iterator[Path]:
    """A file that other users may read but not delete, in a directory they may enter.

    It is not under pytest's tmp_path, whose parents other users cannot enter: the program must
    be able to see the file, so that only its uid stops the deletion."""
    with tempfile.TemporaryDirectory(prefix="leakbench-sentinel-") as directory:
        os.chmod(directory, 0o755)
        path = Path(directory, "sentinel")
        path.write_text("keep me")
        path.chmod(0o644)
        yield path


@pytest.mark.skipif(os.geteuid() != 0, reason="only a separate uid protects the caller's files")
def test_file_outside_the_working_directory_cannot_be_deleted(sentinel: Path) -> None:
    result, _, _ = run(f"os.remove({str(sentinel)!r})\n")
    assert_contained(result)
    # Under /tmp, which the program sees as its own empty tmpfs: not even found.
    assert result.reason.startswith(("PermissionError", "FileNotFoundError"))
    assert sentinel.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() != 0, reason="only a separate uid hides the caller's environ")
def test_caller_credentials_do_not_reach_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "lb-test-token-4f1c9a"
    monkeypatch.setenv("LEAKBENCH_TEST_TOKEN", token)
    result, _, _ = run("""
        print(os.environ.get("LEAKBENCH_TEST_TOKEN"), flush=True)
        print(open(f"/proc/{os.getppid()}/environ", "rb").read(), flush=True)
        """)
    assert_contained(result)
    assert result.reason.startswith("PermissionError")
    assert token not in result.stdout + result.stderr
    assert "None" in result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="only a separate uid protects the caller")
def test_program_cannot_kill_its_parent() -> None:
    result, _, _ = run("import signal\nos.kill(os.getppid(), signal.SIGKILL)\n")
    assert_contained(result)
    assert result.reason.startswith("PermissionError")


@pytest.mark.skipif(
    os.geteuid() != 0, reason="only a separate uid lets the sandbox find escaped children"
)
def test_detached_child_does_not_outlive_the_run() -> None:
    command = ["sleep", f"1000.{os.getpid()}"]
    result, uid, _ = run(
        f"import subprocess\nsubprocess.Popen({command!r}, start_new_session=True)\n"
    )
    assert result.passed  # the program itself did nothing wrong; cleaning up is the sandbox's job
    assert survivors_of(uid) == []
    survivors = psutil.process_iter(["cmdline", "status"])
    assert [
        p
        for p in survivors
        if p.info["cmdline"] == command and p.info["status"] != psutil.STATUS_ZOMBIE
    ] == []


def test_normal_program_passes_with_its_output() -> None:
    result = run_program("print(sum(range(10)))", LIMITS, allow_execution=True)
    assert result == Result("passed", "", result.duration_s, "45\n", "")
    assert 0 < result.duration_s < LIMITS.wall_s


def test_exception_is_a_failure_named_by_its_last_line() -> None:
    result = run_program(
        "def f():\n    raise ValueError('bad input')\nf()\n", LIMITS, allow_execution=True
    )
    assert (result.status, result.reason) == ("failed", "ValueError: bad input")
    assert "Traceback" in result.stderr


def test_execution_is_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sandbox.ALLOW_ENV, raising=False)
    with pytest.raises(
        ExecutionNotAllowed, match=f"allow_execution=True or set {sandbox.ALLOW_ENV}=1"
    ):
        run_program("print(1)", LIMITS)
    with pytest.raises(ExecutionNotAllowed):
        run_programs(["print(1)"], LIMITS)
    monkeypatch.setenv(sandbox.ALLOW_ENV, "1")
    assert run_program("print(1)", LIMITS).passed


def test_output_flood_is_capped() -> None:
    # 100 MB through two pipes took more than LIMITS' 1 s of CPU on a loaded 2-core CI host (a
    # timeout, not a cap failure): this test is about the cap, so time is not what it limits.
    roomy = dataclasses.replace(LIMITS, wall_s=30.0, cpu_s=20)
    result = run_program(
        "import sys\n"
        "sys.stdout.write('o' * (50 << 20))\n"
        "sys.stderr.write('e' * (50 << 20) + 'END')\n",
        roomy,
        allow_execution=True,
    )
    assert result.passed
    assert result.stdout == "o" * LIMITS.output_bytes
    assert result.stderr.endswith("eEND") and len(result.stderr) == LIMITS.output_bytes


def test_working_directory_is_fresh_home_and_removed_afterwards() -> None:
    source = """
        import os, tempfile
        print(os.environ["HOME"], tempfile.gettempdir(), sorted(os.listdir(".")))
        open("left-behind", "w").close()
        """
    first, _, workdir = run(source)
    second, _, other_workdir = run(source)
    assert first.passed and second.passed
    assert first.stdout.splitlines()[1] == f"{workdir} {workdir}/tmp ['main.py', 'tmp']"
    assert workdir != other_workdir


def test_run_programs_keeps_the_order_of_its_sources() -> None:
    sources = [f"import time\ntime.sleep({0.3 - i * 0.1:.1f})\nprint({i})" for i in range(3)]
    results = run_programs(sources, LIMITS, workers=2, allow_execution=True)
    assert [r.stdout for r in results] == ["0\n", "1\n", "2\n"]


@pytest.mark.skipif(os.geteuid() != 0, reason="full isolation needs root")
def test_root_gets_a_separate_uid_and_namespaces() -> None:
    plan = sandbox.isolation()
    assert (plan.separate_uid, plan.namespaces) == (True, True)


def test_isolation_says_why_there_are_no_cgroups() -> None:
    plan = sandbox.isolation()
    assert plan.cgroups in ("v1", "v2", "none")
    assert (plan.cgroups == "none") == bool(plan.no_cgroups_because), plan
    assert sandbox.fingerprint(LIMITS)["isolation"]["cgroups"] == plan.cgroups


def test_programs_start_from_a_launcher_that_is_replaced_when_it_dies() -> None:
    """The caller's size must not slow every start (fork copies its page tables): a small
    launcher process starts the programs. When it dies the run is an "error" result, never
    a verdict, and the next run gets a new launcher."""
    first = run_program("import os\nprint(os.getppid())", LIMITS, allow_execution=True)
    launcher = execution._per_thread.launcher
    assert first.passed and int(first.stdout) == launcher.process.pid != os.getpid()
    launcher.process.kill()
    launcher.process.wait()
    died = launcher.run("print(1)", LIMITS, sandbox.isolation(), reports_verdict=False)
    assert died.status == "error" and "launcher process died" in died.reason
    assert run_program("print(1)", LIMITS, allow_execution=True).passed
    assert execution._per_thread.launcher is not launcher


def test_each_thread_has_its_own_launcher() -> None:
    """Threads calling run_program at once must not wait for each other's programs."""
    parents = []

    def parent_pid() -> None:
        result = run_program("import os\nprint(os.getppid())", LIMITS, allow_execution=True)
        parents.append(int(result.stdout))

    for _ in range(2):
        thread = threading.Thread(target=parent_pid)
        thread.start()
        thread.join()
    parent_pid()
    assert len(set(parents)) == 3
