"""Faults: an engine killed mid-run, Ctrl-C during generation, corrupted and half-built cache
entries, a full disk. Each must end in a clear error or a recovery, never in a result that is
quietly wrong; a later run must give the same table as an undisturbed one.

The run-level faults share one cache (`fault_runs` in conftest.py); the artifact-level ones work
on copies in tmp_path.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import (
    ENV,
    REAP_TIMEOUT_S,
    ROOT,
    as_run,
    benchmark_command,
    corrupt,
    run_benchmark,
    seed,
    tables,
)

from leakbench import artifacts
from leakbench.completions import Store

pytestmark = [pytest.mark.engine, pytest.mark.training]

# --- The engine killed, Ctrl-C -----------------------------------------------------------------


@pytest.fixture(scope="module")
def killed(fault_runs):
    run = as_run(fault_runs["killed"])
    assert run.notes["found_engine"], f"the run ended with no engine:\n{run.output[-3000:]}"
    return run


@pytest.fixture(scope="module")
def interrupted(fault_runs):
    run = as_run(fault_runs["interrupted"])
    assert run.notes["found_engine"], f"the run ended with no engine:\n{run.output[-3000:]}"
    return run


def test_killed_engine_ends_the_run_within_60_s(killed) -> None:
    assert killed.notes["seconds_after_hit"] < 60
    assert killed.returncode not in (0, 1), killed.output[-2000:]  # not "passed", not "leaks"


def test_killed_engine_is_reported_with_its_variants_and_log(killed, fault_runs) -> None:
    """One message naming the engine's variants and showing the last lines of its log, also under
    pytest-xdist (-n 2), where the worker that ran the engine is not the one that reports."""
    output = killed.output
    assert "INTERNALERROR" not in output, output[-3000:]
    assert "vLLM engine for" in output and "(variants: none)" in output, output[-3000:]
    log = next(iter(fault_runs["engine_logs_killed"].values()))
    tail = [line for line in log.splitlines() if line.strip()][-3:]
    assert tail and all(line in output for line in tail), f"log tail {tail} not in:\n{output}"


def test_killed_engine_leaves_no_process(killed) -> None:
    assert killed.notes["left"] == []


def test_killed_run_writes_no_report(killed) -> None:
    assert killed.reports() == []


def test_ctrl_c_during_generation_leaves_no_process(interrupted) -> None:
    assert interrupted.notes["left"] == [], (
        f"alive {REAP_TIMEOUT_S} s after pytest exited: {interrupted.notes['left']}")


def test_ctrl_c_ends_the_run_promptly(interrupted) -> None:
    assert interrupted.returncode == pytest.ExitCode.INTERRUPTED, interrupted.output[-2000:]
    assert interrupted.notes["seconds_after_hit"] < 20


def test_ctrl_c_writes_no_report(interrupted) -> None:
    assert interrupted.reports() == []


# --- Recovery ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recovered(fault_runs):
    run = as_run(fault_runs["recovered"])
    assert run.returncode in (0, 1), run.output[-3000:]
    return run


def test_run_after_the_faults_gives_the_undisturbed_table(recovered, first_run) -> None:
    assert tables((Path(recovered.report_dir) / "results.md").read_text()) == tables(
        (Path(first_run.report_dir) / "results.md").read_text())


def test_corrupted_completion_shard_is_not_trusted(first_run, tmp_path) -> None:
    """One changed byte in a shard: none of its completions is read, so all are asked again."""
    shard = next((Path(first_run.cache) / "completions").glob("*/*.json"))
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(shard, store / shard.name)
    assert Store(store).load() != {}
    corrupt(store / shard.name)
    assert Store(store).load() == {}


def test_corrupted_completion_shard_is_generated_again(fault_runs, first_run) -> None:
    """After the faults, one engine generated `none` again (and nothing for `kl`), and what it
    generated is byte-identical to the undisturbed run's: the new shard has the same content
    hash as the shard that was corrupted."""
    jobs = list(fault_runs["engine_jobs_recovered"].values())
    assert jobs == [{"none": None}]
    none_key = fault_runs["none_key"]
    original = sorted(p.name for p in (Path(first_run.cache) / "completions" / none_key).glob(
        "*.json"))
    assert set(original) <= set(fault_runs["shards_recovered"][none_key])


# --- Artifacts: corrupted, interrupted, disk full -----------------------------------------------

_REBUILD_SCRIPT = """
import json, shutil, sys
from pathlib import Path
from leakbench import artifacts, tiny
cache = Path(sys.argv[1])
built = next((cache / "base-micro").iterdir())
model = built / "model.safetensors"
data = bytearray(model.read_bytes()); data[len(data) // 2] ^= 1; model.write_bytes(bytes(data))
original = Path(sys.argv[2])
calls = []
def train_into(config, out):  # stands for training: the same files as the original build
    calls.append(config.name)
    for path in original.iterdir():
        if path.name != "manifest.json":
            shutil.copy(path, out / path.name)
tiny.train_into = train_into
intact_before = artifacts.is_intact(built)
rebuilt = tiny.build(tiny.MICRO, cache)
print(json.dumps({"intact_before": intact_before, "calls": calls,
                  "same_place": rebuilt == built, "intact_after": artifacts.is_intact(rebuilt),
                  "weights_restored": (rebuilt / "model.safetensors").read_bytes()
                                      == (original / "model.safetensors").read_bytes()}))
"""


def test_corrupted_model_file_is_rebuilt_not_trusted(micro_artifacts, tmp_path) -> None:
    base = next(Path(p) for p in micro_artifacts["paths"] if "/base-micro/" in p)
    cache = tmp_path / "cache"
    shutil.copytree(base, cache / "base-micro" / base.name)
    done = subprocess.run([sys.executable, "-c", _REBUILD_SCRIPT, str(cache), str(base)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts == {"intact_before": False, "calls": ["micro"], "same_place": True,
                     "intact_after": True, "weights_restored": True}


_INTERRUPTED_BUILD_SCRIPT = """
import sys, time
from pathlib import Path
from leakbench import artifacts
def make(out):
    (out / "weights.bin").write_bytes(b"half" * 1000)
    print("writing", flush=True)
    time.sleep(600)
artifacts.build(Path(sys.argv[1]), "stage", {"inputs": 1}, make)
"""


def interrupt_a_build(cache: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_BUILD_SCRIPT, str(cache)],
                             cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


def test_interrupted_artifact_build_leaves_nothing_a_later_run_trusts(tmp_path) -> None:
    cache = tmp_path / "cache"
    interrupt_a_build(cache)
    final = cache / "stage" / artifacts.content_key({"inputs": 1})
    assert not final.exists()
    calls = []

    def make(out: Path) -> None:
        calls.append(out)
        (out / "weights.bin").write_bytes(b"whole" * 1000)

    built = artifacts.build(cache, "stage", {"inputs": 1}, make)
    assert built == final and len(calls) == 1
    assert (built / "weights.bin").read_bytes() == b"whole" * 1000 and artifacts.is_intact(built)


def test_interrupted_artifact_build_leaves_no_garbage_after_the_next_build(tmp_path) -> None:
    """A killed build leaves its temporary directory (a killed `tiny` build: 15 MB); the next
    build of the same artifact, which holds the lock, is the one that can remove it."""
    cache = tmp_path / "cache"
    interrupt_a_build(cache)
    artifacts.build(cache, "stage", {"inputs": 1}, lambda out: (out / "w").write_text("w"))
    assert [p.name for p in (cache / "stage").iterdir() if ".tmp-" in p.name] == []


@pytest.fixture
def tmpfs(tmp_path):
    """A factory of small tmpfs mounts (root only), unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs to fill needs root")
        directory = tmp_path / f"tmpfs-{len(mounted)}"
        directory.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(directory)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(directory)
        return directory

    yield mount
    for directory in mounted:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path) -> None:
    """Write a filler file until the file system is full."""
    with open(directory / "filler", "wb") as out:
        try:
            while True:
                out.write(bytes(64 << 10))
                out.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC


def test_disk_full_while_writing_an_artifact(tmpfs) -> None:
    cache = tmpfs("2m")

    def make(out: Path) -> None:
        for i in range(4):
            (out / f"shard-{i}.bin").write_bytes(bytes(1 << 20))

    with pytest.raises(OSError) as caught:
        artifacts.build(cache, "stage", {"inputs": 1}, make)
    assert caught.value.errno == errno.ENOSPC
    stage = cache / "stage"
    assert sorted(p.name for p in stage.iterdir()) == [
        f".{artifacts.content_key({'inputs': 1})}.lock"]  # no artifact, half or whole
    assert shutil.disk_usage(cache).used < 256 << 10  # the half-written files are gone
    small = artifacts.build(cache, "stage", {"inputs": 1}, lambda out: (out / "w").write_text("w"))
    assert artifacts.is_intact(small)


def test_disk_full_while_writing_the_reports(tmpfs) -> None:
    from reports.files import write_reports
    from reports.records import Collected, parse_record
    from reports.summary import summarize

    collected = Collected()
    collected.records.append(parse_record(json.dumps({
        "metric": "direct_leak", "algorithm": "none", "id": "x", "split": "forget",
        "category": "none", "positives": 0, "samples": 1})))
    directory = tmpfs("1m")
    fill(directory)
    with pytest.raises(OSError):
        write_reports(summarize(collected, ()), {"run": "r", "command": "c", "model": "m",
                                                 "algorithms": ["none"], "attacks": [],
                                                 "sampling": {"samples": 1, "temperature": 0},
          "show_secrets": False},
                      directory)
    assert sorted(p.name for p in directory.iterdir()) == ["filler"]  # no half-written file


def test_disk_full_cache_stops_the_run_with_one_clear_error(tmpfs, micro_artifacts) -> None:
    """The cache's file system fills up when the run writes to it (here: the engine's job, before
    any engine starts). Today every test errors with the same traceback."""
    sizes = sum(f.stat().st_size for p in micro_artifacts["paths"] for f in Path(p).rglob("*")
                if f.is_file())
    cache = tmpfs(f"{sizes // 1024 + 1024}k")
    seed(Path(micro_artifacts["cache_dir"]), micro_artifacts, cache)
    fill(cache)
    reports = cache.parent / "reports"
    run = run_benchmark(benchmark_command(cache, reports, workers=None), cache, reports,
                        timeout=300)
    output = run.output
    assert run.returncode not in (0, 1), output[-3000:]
    assert "No space left on device" in output and str(cache) in output, output[-3000:]
    assert "Traceback" not in output and output.count("No space left") <= 2, output[-3000:]
    assert not reports.exists()
