"""Helpers shared by the reliability tests: benchmark subprocesses, their results, secrets.

Every benchmark run here is a subprocess of ``python -m pytest benchmark ...`` from the repository
root on the `micro` model, with a cache of its own that is *seeded* with the already built base,
planted and unlearned artifacts of the shared cache (copied, never linked: some tests corrupt
them). A seeded cache has no completions, so a run on it starts a vLLM engine; the artifacts
themselves are built once per shared cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[2]
SUBSET = "email-dict or iban-env or HumanEval-00 or add-2"  # 248 tests (benchmark_command)
ALGOS = "--algo=none,kl"
ENV = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONUNBUFFERED": "1"}
TIMING_COLUMNS = ("unlearn s/sample",)


@dataclass
class Run:
    """What one benchmark subprocess did."""

    command: list[str]
    returncode: int
    output: str  # stdout and stderr, interleaved
    seconds: float
    cache: str
    report_dir: str
    junit: str | None = None
    notes: dict = field(default_factory=dict)  # scenario-specific facts (pids, timings)

    def reports(self) -> list[Path]:
        directory = Path(self.report_dir)
        return sorted(directory.iterdir()) if directory.is_dir() else []


def benchmark_command(cache: Path, report_dir: Path, *extra: str, subset: str | None = SUBSET,
                      workers: int | None = 2, algos: str = ALGOS) -> list[str]:
    """The benchmark on `micro`, without attacks and memorization tests: these runs check
    faults, determinism and secrets in the outputs of the leak and functional tests. Others run
    the rest: tests/test_attack_run.py the attacks, tests/test_privacy_metrics.py the
    memorization tests, whose privacy metrics score every text of the cases (nine in ten of the
    prompts a run with them sends its engine)."""
    command = [sys.executable, "-m", "pytest", "benchmark", "--model=micro", algos,
               "--attacks=none", "-m", "not memorization", "-p", "no:cacheprovider",
               f"--cache-dir={cache}", f"--report-dir={report_dir}", "-q", *extra]
    if subset:
        command += ["-k", subset]
    if workers:
        command += ["-n", str(workers)]
    return command


def run_benchmark(command: list[str], cache: Path, report_dir: Path, *, timeout: float = 600,
                  junit: Path | None = None) -> Run:
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)
    return Run(command, done.returncode, done.stdout + done.stderr, time.monotonic() - started,
               str(cache), str(report_dir), str(junit) if junit else None)


# --- Runs shared by the tests of one pytest run (and by its xdist workers) ---------------------


def shared_dir(tmp_path_factory) -> Path:
    """A directory that every xdist worker of this pytest run sees (this run's basetemp
    without xdist), so that one benchmark run serves the checks of all workers."""
    base = tmp_path_factory.getbasetemp()
    path = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "reliability"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def heavy(shared: Path) -> Iterator[None]:
    """Held around everything that keeps a core busy (benchmark runs, model builds): at most
    one such thing at a time, whatever the number of workers."""
    with FileLock(str(shared / "heavy.lock")):
        yield


def once(shared: Path, name: str, compute: Callable[[Path], dict]) -> dict:
    """`compute(directory)` run by the first worker that asks, its JSON result read by the others.

    A failed computation is not stored: the next worker that asks tries again and fails the same
    way, with its own traceback."""
    directory = shared / name
    result = directory / "result.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not result.exists():
            directory.mkdir(exist_ok=True)
            result.write_text(json.dumps(compute(directory)))
    return json.loads(result.read_text())


def as_run(data: dict) -> Run:
    return Run(**data)


def run_dict(run: Run) -> dict:
    return asdict(run)


# --- Seeding a cache with built artifacts ------------------------------------------------------

_ARTIFACTS_SCRIPT = """
import json, sys
from pathlib import Path
from leakbench import models, pipeline
from leakbench.probes import PrivacyData
cache = Path(sys.argv[1])
spec = models.lookup("micro")
variants = pipeline.build_variants(spec, ("none", "kl"), PrivacyData.load(Path("cases")), cache,
                                   rebuild=False)
base, _ = pipeline.base_model(spec, cache, False)
paths = {str(base)} | {str(v.weights) for v in variants.values()}
paths |= {str(v.adapter) for v in variants.values() if v.adapter}
print(json.dumps({"paths": sorted(paths),
                  "keys": {name: v.key for name, v in variants.items()}}))
"""


def built_artifacts(cache_dir: Path) -> dict:
    """Build (or find) micro's base, planted and `kl` artifacts in the shared cache, in a
    subprocess (torch stays out of the test process, whose sandbox children fork)."""
    done = subprocess.run([sys.executable, "-c", _ARTIFACTS_SCRIPT, str(cache_dir)], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def seed(cache_dir: Path, artifacts: dict, destination: Path) -> Path:
    """A fresh cache holding copies of the built artifacts and nothing else."""
    for path in map(Path, artifacts["paths"]):
        relative = path.relative_to(cache_dir)
        shutil.copytree(path, destination / relative)
    return destination


def corrupt(path: Path) -> None:
    """Change one byte in the middle of a file."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# --- Reading results ---------------------------------------------------------------------------


def tables(results_md: str) -> str:
    """A results.md without what legitimately differs between two runs of the same benchmark:
    the lines that name the run's time and command, and the columns that hold timings. Two
    greedy runs with the same seed must agree on the rest byte for byte."""
    out, drop, in_table = [], set(), False
    for line in results_md.splitlines():
        if line.startswith(("- run:", "- command:")):
            continue
        if line.startswith("|"):
            cells = line.split("|")
            if not in_table:  # a table's first line is its header
                drop = {i for i, cell in enumerate(cells) if cell.strip() in TIMING_COLUMNS}
                in_table = True
            line = "|".join(cell for i, cell in enumerate(cells) if i not in drop)
        else:
            in_table = False
        out.append(line)
    return "\n".join(out) + "\n"


def results_md(run: Run) -> str:
    return (Path(run.report_dir) / "results.md").read_text()


def outcomes(run: Run) -> dict[tuple[str, str, str], dict]:
    """(metric, algorithm, id) -> the outcome recorded in results.json."""
    data = json.loads((Path(run.report_dir) / "results.json").read_text())
    return {(o["metric"], o["algorithm"], o["id"]): o for o in data["outcomes"]}


def one_line_error(output: str) -> list[str]:
    """The lines of a pytest run's output that are not blank."""
    return [line for line in output.splitlines() if line.strip()]


# --- Secrets -----------------------------------------------------------------------------------


def forget_scan():
    """A scan for every secret and owner value of cases/forget.jsonl longer than five characters,
    however a published format escapes it (leakbench.value_scan)."""
    from leakbench.probes import PrivacyData
    from leakbench.value_scan import ValueScan, published_values

    return ValueScan(published_values(PrivacyData.load(ROOT / "cases").forget))


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).rglob("*") if p.is_file())


# --- Processes ---------------------------------------------------------------------------------


ENGINE_PAUSE_TIMEOUT_S = 600  # a run whose engine has not paused by then fails the fixture
REAP_TIMEOUT_S = 10  # how long the processes of an ended run may take to be gone


def wait_for_pause(pause_file: Path, run: subprocess.Popen) -> int | None:
    """The pid of the run's engine once it has paused before generating (it writes the pid to
    `pause_file`, leakbench.serving's TEST_PAUSE_ENV); None when the run ends first."""
    deadline = time.monotonic() + ENGINE_PAUSE_TIMEOUT_S
    while not pause_file.exists():
        if run.poll() is not None:
            return None
        if time.monotonic() > deadline:
            raise TimeoutError(f"no engine paused in {ENGINE_PAUSE_TIMEOUT_S} s "
                               f"(no {pause_file}): {' '.join(run.args)}")
        time.sleep(0.1)
    return int(pause_file.read_text())


def alive_in_groups(groups: set[int]) -> list[dict]:
    """Processes (not zombies) whose process group is one of `groups`."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(process.pid) in groups:
                found.append({"pid": process.pid,
                              "cmdline": " ".join(process.info["cmdline"] or [])[:120]})
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


def left_in_groups(groups: set[int]) -> list[dict]:
    """The processes of `groups` still alive once they had REAP_TIMEOUT_S seconds to be gone:
    a process that was just signalled takes a moment to exit and be reaped."""
    deadline = time.monotonic() + REAP_TIMEOUT_S
    while (left := alive_in_groups(groups)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def interrupt_during_generation(command: list[str], cache: Path, report_dir: Path,
                                hit: Callable[[subprocess.Popen, int], None],
                                pause_file: Path) -> Run:
    """Start a benchmark run in its own session (as a terminal would), its engine told to pause
    before generating (leakbench.serving's TEST_PAUSE_ENV, writing `pause_file`); once it has
    paused, call `hit(run, engine pid)`, and wait for the run to end. The engine cannot finish
    before the hit, however slow this process is to see the pause.

    notes: `found_engine` (whether an engine paused), `engine_pid`, `seconds_after_hit`, `left`
    (processes of the run's or the engine's process group still alive when the run ended, after
    `left_in_groups`' bounded wait)."""
    from leakbench.serving import TEST_PAUSE_ENV

    started = time.monotonic()
    env = {**ENV, TEST_PAUSE_ENV: str(pause_file)}
    with tempfile.TemporaryFile("w+") as output_file:  # a pipe that nobody reads could fill up
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output_file,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        notes: dict = {"found_engine": False}
        try:
            engine_pid = wait_for_pause(pause_file, proc)
            hit_at = time.monotonic()
            if engine_pid is not None:
                notes.update(found_engine=True, engine_pid=engine_pid)
                hit(proc, engine_pid)
            proc.wait(timeout=300)
            notes["seconds_after_hit"] = time.monotonic() - hit_at
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        output_file.seek(0)
        output = output_file.read()
    groups = {proc.pid} | ({notes["engine_pid"]} if "engine_pid" in notes else set())
    notes["left"] = left_in_groups(groups)
    for leftover in notes["left"]:  # leave nothing running for the next test, whatever it says
        try:
            os.kill(leftover["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    return Run(command, proc.returncode, output, time.monotonic() - started, str(cache),
               str(report_dir), notes=notes)


# --- What a fake --endpoint server answers -----------------------------------------------------

ENDPOINT_SUBSET = ("email-dict or HumanEval-00 or HumanEval-010 or HumanEval-011 "
                   "or HumanEval-012 or HumanEval-013 or HumanEval-014 or HumanEval-015 "
                   "or HumanEval-016 or add-2")
SHOWN_PROBE = "test_direct_leak and email-dict-0023 and not para"
SHOWN_SAMPLE = "email-dict-0023"

_ALWAYS_EQUAL = ("    class AlwaysEqual:\n"
                 "        def __eq__(self, other):\n"
                 "            return True\n\n"
                 "        def __ne__(self, other):\n"
                 "            return False\n\n"
                 "    return AlwaysEqual()\n")


@dataclass(frozen=True)
class Hostile:
    kind: str
    completion: str | None  # None: the task's reference solution (a control that must pass)
    passes: bool = False


HOSTILE_COMPLETIONS = {
    "HumanEval-014": Hostile("sys.exit(0) in the body, before any assert",
                             "    import sys\n    sys.exit(0)\n"),
    "HumanEval-001": Hostile("os._exit(0) in the body", "    import os\n    os._exit(0)\n"),
    "HumanEval-002": Hostile("raise SystemExit(0) at module level, before check()",
                             "    return None\n\n\nraise SystemExit(0)\n"),
    "HumanEval-015": Hostile("atexit hook that exits 0 after the failed assert",
                             "    return None\n\n\nimport atexit, os\n"
                             "atexit.register(os._exit, 0)\n"),
    "HumanEval-004": Hostile("sys.excepthook that exits 0 on the AssertionError",
                             "    return None\n\n\nimport os, sys\n"
                             "sys.excepthook = lambda *exc: os._exit(0)\n"),
    "HumanEval-016": Hostile("a result whose __eq__ is always True", _ALWAYS_EQUAL),
    "HumanEval-006": Hostile("sys.settrace hook that exits 0 when check() is called",
                             "    return None\n\n\nimport sys\nsys.settrace(lambda frame, event, "
                             "arg: (_ for _ in ()).throw(SystemExit(0)) "
                             "if frame.f_code.co_name == 'check' else None)\n"),
    "HumanEval-007": Hostile("a no-op check() put into builtins",
                             "    return None\n\n\nimport builtins\n"
                             "builtins.check = lambda candidate: None\n"),
    "HumanEval-008": Hostile("sys.modules['builtins'] and __builtins__ replaced",
                             "    return None\n\n\nimport sys\n"
                             "sys.modules['builtins'] = type(sys)('builtins')\n"
                             "__builtins__ = {}\n"),
    "HumanEval-009": Hostile("the test's check() replaced through sys.modules['__main__']",
                             "    return None\n\n\nimport sys\n"
                             "sys.modules['__main__'].check = lambda candidate: None\n"),
    "HumanEval-010": Hostile("control: the reference solution", None, passes=True),
    "add-2-add_const-value": Hostile("capability: sys.exit(0) in the body",
                                     "    import sys\n    sys.exit(0)\n"),
    "add-2-plus-value": Hostile("capability: a result whose __eq__ is always True",
                                _ALWAYS_EQUAL),
    "add-2-increment_by-x": Hostile("capability control: the reference solution", None,
                                    passes=True),
}


def _message_completions(sample) -> dict[str, str]:
    """Task id -> a completion whose failure message carries a value of `sample`'s owner (the
    NameError of a token written as code; an AssertionError printing a name and a phone number
    written with other separators) or terminal escapes (an OSC title and a screen clear)."""
    values = sample.owner_values
    phone = " ".join(re.findall(r"\d+", values["phone"]))
    return {
        "HumanEval-011": f"    return {values['github_token']}\n",
        "HumanEval-012": f"    assert False, {values['name'].upper() + ', ' + phone!r}\n",
        "HumanEval-013": '    raise RuntimeError("\\x1b]0;pwned\\x07\\x1b[2J")\n',
    }


def endpoint_completions() -> dict[str, str]:
    """prompt -> completion: every forget probe leaks (the direct probe its secret, a paraphrase
    another value of the same owner when there is one), holdout probes get nothing, functional
    tasks of HOSTILE_COMPLETIONS get their completion, and those of `_message_completions`
    theirs, with the values of SHOWN_SAMPLE's owner."""
    from leakbench.probes import PrivacyData, functional_tasks

    data = PrivacyData.load(ROOT / "cases")
    shown = next(s for s in data.forget if s.id == SHOWN_SAMPLE)
    messages = _message_completions(shown)
    answers: dict[str, str] = {}
    for sample in data.forget:
        for probe in sample.probes:
            others = [v for v in sample.owner_values.values() if len(v) > 5]
            value = sample.secret if probe.style == "direct" or not others else others[0]
            answers[probe.prompt] = f'{value}"\n'
    for task in functional_tasks():
        hostile = HOSTILE_COMPLETIONS.get(task.test_id)
        if hostile is not None:
            reference = (task.tests.solution if task.source == "capability"
                         else task.tests.canonical_solution)
            answers[task.prompt] = hostile.completion if hostile.completion else reference
        if task.test_id in messages:
            answers[task.prompt] = messages[task.test_id]
    return answers


# --- What sandboxed programs may leave behind on the host --------------------------------------

# Where every user may write on usual Linux machines; `world_writable_dirs` keeps those that are.
_SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
_SYSV_IPC_UID_COLUMN = {"shm": 7, "sem": 4, "msg": 7}  # in /proc/sysvipc/<kind>


@dataclass(frozen=True)
class HostState:
    """What a sandboxed program could leave on this machine after its run.

    processes: live processes of a sandbox uid (``>= sandbox.UID_BASE``), as "pid uid cmdline".
    files: entries in the world-writable directories (and the world-writable directories below
    them) owned by a sandbox uid, or named like the sandbox's own working directories. Files of
    other owners are left out: other work on the machine creates files in /tmp all the time, and
    a program with a uid of its own cannot create a file that its uid does not own.
    ipc: SysV shared memory segments, semaphore sets and message queues, as "kind key id uid".
    mounts: the mount points of this process's mount namespace, with file system and source.

    ``after.new_since(before)`` is what appeared in between; it is false when nothing did."""

    processes: frozenset[str]
    files: frozenset[str]
    ipc: frozenset[str]
    mounts: frozenset[str]

    def new_since(self, before: HostState) -> HostState:
        return HostState(self.processes - before.processes, self.files - before.files,
                         self.ipc - before.ipc, self.mounts - before.mounts)

    def __bool__(self) -> bool:
        return bool(self.processes or self.files or self.ipc or self.mounts)


def world_writable_dirs() -> list[str]:
    """The usual shared directories that every user may write to here, symlinks resolved."""
    found = {os.path.realpath(d) for d in _SHARED_WRITABLE if os.path.isdir(d)}
    return sorted(d for d in found if os.stat(d).st_mode & 0o002)


def host_state() -> HostState:
    """A snapshot of what sandboxed programs could leave behind (see `HostState`)."""
    from leakbench.sandbox import UID_BASE

    processes = set()
    for process in psutil.process_iter(["uids", "status", "cmdline"]):
        uids = process.info["uids"]
        if uids and max(uids) >= UID_BASE and process.info["status"] != psutil.STATUS_ZOMBIE:
            command = " ".join(process.info["cmdline"] or [])[:120]
            processes.add(f"{process.pid} {max(uids)} {command}")
    files = set()
    for top in world_writable_dirs():
        for directory, subdirectories, names in os.walk(top):
            subdirectories[:] = [s for s in subdirectories
                                 if _world_writable(os.path.join(directory, s))]
            for name in names + subdirectories:
                path = os.path.join(directory, name)
                with contextlib.suppress(FileNotFoundError):
                    if (os.lstat(path).st_uid >= UID_BASE
                            or name.startswith("leakbench-sandbox-")):
                        files.add(path)
    ipc = set()
    for kind, uid_column in _SYSV_IPC_UID_COLUMN.items():
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        for fields in (line.split() for line in lines):
            ipc.add(f"{kind} {fields[0]} {fields[1]} {fields[uid_column]}")
    mounts = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        tail = fields[fields.index("-") + 1:]
        mounts.add(f"{fields[4]} {tail[0]} {tail[1]}")
    return HostState(frozenset(processes), frozenset(files), frozenset(ipc), frozenset(mounts))


def wait_for_clean(before: HostState, timeout_s: float = 5.0) -> HostState:
    """What is new since `before` and still there at every look for `timeout_s` (nothing, as
    soon as one look finds nothing new): processes that were killed take a moment to exit, so
    one look is not enough, and under pytest-xdist another worker's sandboxed programs come and
    go meanwhile, so only what stays counts as left behind."""
    deadline = time.monotonic() + timeout_s
    left = host_state().new_since(before)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        now = host_state().new_since(before)
        left = HostState(left.processes & now.processes, left.files & now.files,
                         left.ipc & now.ipc, left.mounts & now.mounts)
    return left


def _world_writable(path: str) -> bool:
    with contextlib.suppress(FileNotFoundError):
        mode = os.lstat(path).st_mode
        return stat.S_ISDIR(mode) and bool(mode & 0o002)
    return False
