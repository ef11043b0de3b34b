import json
import multiprocessing
import threading
import time

import pytest

from leakbench import artifacts, launch


def _write(text):
    def make(out):
        (out / "data.txt").write_text(text)
    return make


def test_built_once_then_reused(tmp_path):
    calls = []

    def make(out):
        calls.append(1)
        (out / "data.txt").write_text("x")

    first = artifacts.build(tmp_path, "stage", {"a": 1}, make)
    second = artifacts.build(tmp_path, "stage", {"a": 1}, make)
    assert first == second and len(calls) == 1
    assert (first / "data.txt").read_text() == "x"
    assert artifacts.read_manifest(first)["inputs"] == {"a": 1}


def test_inputs_change_the_key(tmp_path):
    a = artifacts.build(tmp_path, "stage", {"a": 1}, _write("1"))
    b = artifacts.build(tmp_path, "stage", {"a": 2}, _write("2"))
    assert a != b
    assert artifacts.content_key({"x": 1, "y": 2}) == artifacts.content_key({"y": 2, "x": 1})


def test_tampered_file_is_detected_and_rebuilt(tmp_path):
    path = artifacts.build(tmp_path, "stage", {"a": 1}, _write("good"))
    (path / "data.txt").write_text("bad")
    assert not artifacts.is_intact(path)
    again = artifacts.build(tmp_path, "stage", {"a": 1}, _write("good"))
    assert again == path and (path / "data.txt").read_text() == "good"


def test_rebuild_forces_a_new_build(tmp_path):
    artifacts.build(tmp_path, "stage", {"a": 1}, _write("old"))
    path = artifacts.build(tmp_path, "stage", {"a": 1}, _write("new"), rebuild=True)
    assert (path / "data.txt").read_text() == "new"


def test_failed_build_leaves_nothing(tmp_path):
    def make(out):
        (out / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        artifacts.build(tmp_path, "stage", {"a": 1}, make)
    leftovers = [p.name for p in (tmp_path / "stage").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def _slow_build(cache, counter):
    def make(out):
        with open(counter, "a") as f:
            f.write("built\n")
        time.sleep(0.5)
        (out / "data.txt").write_text("x")

    artifacts.build(cache, "stage", {"a": 1}, make)


def test_concurrent_builders_build_once(tmp_path):
    counter = tmp_path / "counter"
    procs = [multiprocessing.Process(target=_slow_build, args=(tmp_path / "cache", counter))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert counter.read_text().count("built") == 1
    manifest = json.loads(next((tmp_path / "cache" / "stage").glob("*/manifest.json")).read_text())
    assert manifest["files"].keys() == {"data.txt"}


def test_a_killed_builders_leftovers_are_removed_by_the_next_build(tmp_path):
    stale = tmp_path / "stage" / f".{artifacts.content_key({'a': 1})}.tmp-99999999"
    stale.mkdir(parents=True)
    (stale / "half.txt").write_text("half")
    artifacts.build(tmp_path, "stage", {"a": 1}, _write("x"))
    assert not stale.exists()


# --- under a multi-process launch --------------------------------------------------------------

class Threads:
    """Threads standing in for the processes of a launch (leakbench.launch.Processes): thread 0
    runs `on_main`'s work and the others take its result; if it fails, they are ended, as a
    launcher ends the other processes."""

    def __init__(self, count):
        self.barrier = threading.Barrier(count, timeout=30)
        self.local = threading.local()
        self.result = None

    @property
    def is_main(self):
        return self.local.index == 0

    def on_main(self, work):
        if self.is_main:
            try:
                self.result = work()
            except BaseException:
                self.barrier.abort()
                raise
        self.barrier.wait()
        result = self.result
        self.barrier.wait()  # nobody reads the next result before everyone has this one
        return result

    def run(self, target):
        """`target()` in every thread; what each returned (or raised), by thread index."""
        outcomes = {}

        def body(index):
            self.local.index = index
            try:
                outcomes[index] = target()
            except BaseException as error:
                outcomes[index] = error

        threads = [threading.Thread(target=body, args=(i,)) for i in range(self.barrier.parties)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return outcomes


def test_a_launch_builds_collectively_and_only_process_0_writes(tmp_path, monkeypatch):
    group = Threads(3)
    monkeypatch.setattr(launch, "processes", lambda: group)
    calls = []

    def make(out):  # what a training stage does: every process trains, process 0 writes
        calls.append(group.local.index)
        if group.is_main:
            (out / "data.txt").write_text("x")

    def build(**options):
        return artifacts.build(tmp_path, "stage", {"a": 1}, make, collective=True, **options)

    paths = group.run(build)
    assert sorted(calls) == [0, 1, 2] and len(set(paths.values())) == 1
    path = paths[0]
    assert artifacts.is_intact(path) and (path / "data.txt").read_text() == "x"
    assert sorted(p.name for p in (tmp_path / "stage").iterdir()) == [f".{path.name}.lock",
                                                                         path.name]
    calls.clear()
    assert group.run(build) == paths and calls == []  # process 0 found it built: nobody trains
    assert group.run(lambda: build(rebuild=True)) == paths and sorted(calls) == [0, 1, 2]


def test_a_launch_builds_other_stages_on_process_0_alone(tmp_path, monkeypatch):
    group = Threads(2)
    monkeypatch.setattr(launch, "processes", lambda: group)
    calls = []

    def make(out):
        calls.append(group.local.index)
        (out / "data.txt").write_text("x")

    paths = group.run(lambda: artifacts.build(tmp_path, "stage", {"a": 1}, make))
    assert calls == [0] and paths[0] == paths[1] and artifacts.is_intact(paths[0])

    def fail(out):
        raise RuntimeError("process 0 failed")

    outcomes = group.run(lambda: artifacts.build(tmp_path, "stage", {"a": 2}, fail))
    assert isinstance(outcomes[0], RuntimeError)
    assert isinstance(outcomes[1], threading.BrokenBarrierError)  # ended, not left waiting
    assert not list((tmp_path / "stage").glob(".*.tmp-*"))
