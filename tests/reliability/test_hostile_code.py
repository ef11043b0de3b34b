"""Hostile generated code: each kind ends as a non-passed sandbox result with a one-line reason,
this test process survives, and a fake cache and reports directory (world-readable, outside the
program's working directory) are untouched.

Two layers: programs run through `leakbench.sandbox.run_program` as they are (the sandbox's
walls), and completions that attack the harness around them (early exits, patched helpers),
answered by a fake --endpoint server and judged by the benchmark's own functional tests
(`endpoint_runs`), so that what is checked is what the benchmark does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from reliability_helpers import HOSTILE_COMPLETIONS, as_run, host_state, outcomes, wait_for_clean

from leakbench import sandbox
from leakbench.sandbox import Limits, Result, run_program

LIMITS = Limits(wall_s=3.0, cpu_s=2, memory_bytes=512 << 20, file_bytes=1 << 20, processes=16,
                output_bytes=8 << 10)
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0,
                               reason="without root the program runs as the caller's uid "
                                      "(see leakbench.sandbox: what is weaker without root)")


@pytest.fixture(scope="module")
def fake_dirs() -> Iterator[dict[str, Path]]:
    """A cache with an artifact and a reports directory with results, readable by everyone, in a
    directory everyone may enter (unlike pytest's tmp_path)."""
    top = Path(tempfile.mkdtemp(prefix="leakbench-reliability-"))
    top.chmod(0o755)
    artifact = top / "cache" / "base-micro" / "0123456789abcdef0123"
    artifact.mkdir(parents=True)
    (artifact / "model.safetensors").write_bytes(os.urandom(4096))
    (artifact / "manifest.json").write_text('{"files": {}}')
    reports = top / "reports" / "out"
    reports.mkdir(parents=True)
    (reports / "results.md").write_text("# LeakBench results\n")
    for path in top.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield {"top": top, "cache": top / "cache", "artifact": artifact, "reports": reports}
    shutil.rmtree(top)


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(directory)): (p.stat().st_mode,
                                            hashlib.sha256(p.read_bytes()).hexdigest()
                                            if p.is_file() else "")
            for p in sorted(directory.rglob("*"))}


@pytest.fixture(autouse=True)
def untouched(fake_dirs) -> Iterator[None]:
    before = snapshot(fake_dirs["top"])
    yield
    assert snapshot(fake_dirs["top"]) == before, "the program changed the fake cache or reports"


REFUSED = ("PermissionError", "FileNotFoundError")  # not allowed, or not even visible


def run(source: str, limits: Limits = LIMITS) -> Result:
    result = run_program(textwrap.dedent(source), limits, allow_execution=True)
    assert not result.passed, f"a hostile program passed: {result}"
    assert result.reason and "\n" not in result.reason, f"no one-line reason: {result!r}"
    return result


def live_processes(match: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline", "status"])
            if match in " ".join(p.info["cmdline"] or [])
            and p.info["status"] != psutil.STATUS_ZOMBIE]


# --- The sandbox's walls -----------------------------------------------------------------------


@pytest.mark.slow
def test_infinite_loop() -> None:
    assert run("while True:\n    pass\n").status == "timeout"


@pytest.mark.slow
def test_sleeping_forever() -> None:
    result = run("import time\ntime.sleep(3600)\n")
    assert result.status == "timeout" and result.duration_s < LIMITS.wall_s + 1


@pytest.mark.slow
def test_fork_bomb() -> None:
    before = host_state()
    result = run("""
        import os
        print(os.getuid(), flush=True)
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """, Limits(wall_s=2.0, cpu_s=2, processes=16))
    uid = int(result.stdout.split()[0])
    if os.geteuid() == 0:  # a uid of its own: every process of that uid is the bomb's
        assert uid != os.getuid()
        assert wait_for_clean(before).processes == frozenset()


def test_memory_bomb_at_once() -> None:
    assert run("block = bytearray(64 << 30)\n").status == "memory"


def test_memory_bomb_step_by_step() -> None:
    result = run("""
        blocks = []
        while True:
            blocks.append(bytearray(16 << 20))
        """)
    assert result.status in ("memory", "timeout")


@pytest.mark.slow
def test_deep_recursion() -> None:
    result = run("""
        import sys
        sys.setrecursionlimit(10 ** 8)
        def down(n):
            return down(n + 1) + 1
        down(0)
        """)
    # RecursionError, MemoryError, SIGSEGV on a blown C stack, or the CPU limit
    assert result.status in ("failed", "memory", "timeout")


@pytest.mark.slow
def test_output_flood_is_capped_and_stopped() -> None:
    result = run("""
        import sys
        while True:
            sys.stdout.write("o" * 65536)
            sys.stderr.write("e" * 65536)
        """)
    assert result.status == "timeout"
    assert len(result.stdout) <= LIMITS.output_bytes and len(result.stderr) <= LIMITS.output_bytes


def test_one_huge_file() -> None:
    result = run("""
        with open("huge", "wb") as out:
            while True:
                out.write(bytes(1 << 20))
        """)
    assert result.reason == f"file size limit of {LIMITS.file_bytes} bytes"


@ROOT_ONLY
def test_disk_filling_outside_the_working_directory_leaves_nothing_behind() -> None:
    """Many files below the size limit, where everyone may write (/tmp, /var/tmp, /dev/shm):
    the run must end, and nothing it wrote may outlive it (a full disk or a full /dev/shm, which
    is memory, would break the runs after it)."""
    tag = f"leakbench-fill-{uuid.uuid4().hex}"
    places = [d for d in ("/tmp", "/var/tmp", "/dev/shm") if os.access(d, os.W_OK)]
    try:
        run(f"""
            import os
            written = 0
            for place in {places!r}:
                for i in range(64):  # 64 MiB per place at most: enough to tell
                    try:
                        with open(os.path.join(place, "{tag}-" + str(i)), "wb") as out:
                            out.write(bytes(1 << 20))
                        written += 1
                    except OSError:
                        break
            raise SystemExit("wrote " + str(written) + " MiB outside the working directory")
            """, Limits(wall_s=10.0, cpu_s=10, memory_bytes=512 << 20, file_bytes=1 << 20))
        left = [str(p) for place in places for p in Path(place).glob(f"{tag}-*")]
        assert left == [], f"{len(left)} files of the program outlived it, e.g. {left[:2]}"
    finally:
        for place in places:
            for path in Path(place).glob(f"{tag}-*"):
                path.unlink()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def test_network(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = run(f"""
        import socket
        for address in [("1.1.1.1", 53), ("pypi.org", 443)]:
            try:
                socket.create_connection(address, timeout=1).close()
                print("connected to", address)
            except OSError as err:
                print("refused", address, type(err).__name__)
        socket.create_connection(("127.0.0.1", {port}), timeout=1)
        """)
    assert result.reason.startswith(("OSError", "ConnectionRefusedError", "PermissionError"))
    assert "connected to" not in result.stdout
    with pytest.raises(BlockingIOError):
        listener.accept()


@ROOT_ONLY
def test_deleting_the_cache_and_reports(fake_dirs) -> None:
    result = run(f"""
        import shutil
        shutil.rmtree({str(fake_dirs["cache"])!r})
        shutil.rmtree({str(fake_dirs["reports"])!r})
        """)
    assert result.reason.startswith(REFUSED)


@ROOT_ONLY
def test_overwriting_an_artifact_and_a_report(fake_dirs) -> None:
    result = run(f"""
        for path in ({str(fake_dirs["artifact"] / "model.safetensors")!r},
                     {str(fake_dirs["reports"] / "results.md")!r}):
            with open(path, "r+b") as out:
                out.write(b"poisoned")
        """)
    assert result.reason.startswith(REFUSED)


@ROOT_ONLY
def test_renaming_into_the_cache(fake_dirs) -> None:
    result = run(f"""
        import os
        open("fake", "w").write("{{}}")
        os.replace("fake", {str(fake_dirs["artifact"] / "manifest.json")!r})
        """)
    assert result.reason.startswith(REFUSED)


@ROOT_ONLY
def test_reading_the_parents_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    token = f"lb-reliability-{uuid.uuid4().hex}"
    monkeypatch.setenv("LEAKBENCH_RELIABILITY_TOKEN", token)
    result = run("""
        import os
        print(dict(os.environ))
        for pid in (os.getppid(), 1):
            print(open(f"/proc/{pid}/environ", "rb").read())
        """)
    assert token not in result.stdout + result.stderr


@ROOT_ONLY
def test_reading_files_under_home() -> None:
    token = f"lb-reliability-{uuid.uuid4().hex}"
    secret = Path.home() / f".leakbench-reliability-{uuid.uuid4().hex}"
    secret.write_text(token)
    secret.chmod(0o644)
    try:
        result = run(f"""
            import os
            print(os.path.expanduser("~"))
            print(open({str(secret)!r}).read())
            """)
        assert token not in result.stdout + result.stderr
    finally:
        secret.unlink()


@ROOT_ONLY
def test_signals_to_the_parent_and_its_group() -> None:
    result = run("""
        import os, signal
        for send in (lambda: os.kill(os.getppid(), signal.SIGKILL),
                     lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL),
                     lambda: os.kill(os.getppid(), signal.SIGINT)):
            try:
                send()
            except OSError as err:
                print(type(err).__name__)
        raise SystemExit(1)
        """)
    assert result.stdout.split() == ["PermissionError"] * 3


@ROOT_ONLY
def test_killing_everything_it_can() -> None:
    """kill(-1) reaches every process the program may signal: as its own uid, none of ours."""
    bystander = psutil.Popen(["sleep", "60"])
    try:
        result = run("""
            import os, signal
            os.kill(-1, signal.SIGKILL)
            raise SystemExit("still here")
            """)
        assert result.reason == "still here"
        assert bystander.is_running() and bystander.status() != psutil.STATUS_ZOMBIE
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.slow
@ROOT_ONLY
def test_lingering_children() -> None:
    marker = f"9{uuid.uuid4().int % 10**8}"
    run(f"""
        import os, subprocess
        subprocess.Popen(["sleep", "3{marker}"], start_new_session=True)
        if os.fork() == 0:  # a daemon: fork, setsid, fork again, parent gone
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "4{marker}"])
            os._exit(0)
        os.wait()
        subprocess.Popen(["sleep", "5{marker}"]).wait()  # and block until the wall clock
        """)
    deadline = time.monotonic() + 5  # killed processes take a moment to exit
    while live_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_processes(marker) == []


# --- Attacks on the harness, judged by the benchmark itself ------------------------------------


@pytest.fixture(scope="module")
def judged(endpoint_runs) -> dict[str, dict]:
    run = as_run(endpoint_runs["leaky"])
    assert run.returncode in (0, 1), run.output[-3000:]
    return {key[2]: outcome for key, outcome in outcomes(run).items()
            if key[0] in ("capability", "humaneval")}


@pytest.mark.engine
@pytest.mark.parametrize("task_id", sorted(HOSTILE_COMPLETIONS),
                         ids=[f"{t}: {HOSTILE_COMPLETIONS[t].kind}"
                              for t in sorted(HOSTILE_COMPLETIONS)])
def test_completion_attacking_the_harness_does_not_pass(judged, task_id: str) -> None:
    hostile = HOSTILE_COMPLETIONS[task_id]
    outcome = judged[task_id]
    if hostile.passes:
        assert outcome["category"] == "passed", f"the control failed: {outcome}"
    else:
        assert outcome["category"] != "passed", (
            f"{hostile.kind}: judged passed ({outcome}); the program left with status 0 before "
            "its tests ran to the end, or fooled them")


@ROOT_ONLY
def test_the_sandbox_has_full_isolation_here() -> None:
    """What the checks above assume on this machine: a uid of its own per run, namespaces, and
    a cgroup per run for the whole program's memory and processes (cgroups are writable for
    root here: if they stop being so, this fails instead of the caps silently going away)."""
    plan = sandbox.isolation()
    assert (plan.separate_uid, plan.namespaces) == (True, True)
    assert plan.cgroups in ("v1", "v2"), f"no cgroup per run: {plan.no_cgroups_because}"
