import json
import multiprocessing
import time

import pytest

from leakbench import artifacts


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
