"""Stages report their progress and cost (leakbench.progress), across processes, and a `Display`
draws them as a person follows a run."""

import json
import os
import subprocess
import sys

import pytest

from leakbench import artifacts, progress
from leakbench.plugin.progress import stage_table


@pytest.fixture
def events(tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv(progress.EVENTS_ENV, str(path))
    monkeypatch.delenv(progress.PARENT_ENV, raising=False)
    return path


def read(path):
    return progress.read_events(path)[0]


def test_a_stage_reports_start_steps_and_end_with_its_work(events):
    with progress.stage("plant") as current:
        current.set_total(3)
        for _ in range(3):
            progress.current().advance(tokens=100)
        current.note(dtype="float32", threads=2)
    kinds = [event["event"] for event in read(events)]
    assert kinds[0] == "start" and kinds[-1] == "end"
    end = read(events)[-1]
    assert end["status"] == "built" and end["done"] == 3 and end["total"] == 3
    assert end["work"] == {"tokens": 300, "dtype": "float32", "threads": 2}
    assert end["wall_s"] >= 0 and end["cpu_s"] >= 0


def test_a_failing_stage_ends_as_failed(events):
    with pytest.raises(RuntimeError), progress.stage("unlearn ga"):
        raise RuntimeError("diverged")
    assert read(events)[-1]["status"] == "failed"


def test_outside_a_stage_and_in_a_launch_s_other_processes_nothing_is_reported(events,
                                                                               monkeypatch):
    progress.current().advance(tokens=5)
    monkeypatch.setenv("RANK", "1")
    with progress.stage("plant") as current:
        current.advance()
    assert not events.exists()


def test_an_artifact_stage_is_built_then_cached(events, tmp_path):
    def make(out):
        progress.current().set_total(1)
        progress.current().advance()
        (out / "weights").write_text("w")

    for _ in range(2):
        artifacts.build(tmp_path / "cache", "planted", {"x": 1}, make, label="plant")
    records = progress.stage_records(read(events))
    assert [(r["stage"], r["status"]) for r in records] == [("plant", "built")]
    ends = [e for e in read(events) if e["event"] == "end"]
    assert [e["status"] for e in ends] == ["built", "cached"]


def test_a_child_process_s_stages_are_parts_of_the_open_stage(events):
    child = ("from leakbench import progress\n"
             "with progress.stage('engine start') as s:\n"
             "    s.advance(0, prompts=sum(range(3_000_000)) and 4)\n")
    with progress.stage("generate"):
        env = {**os.environ, **progress.child_env()}
        subprocess.run([sys.executable, "-c", child], env=env, check=True)
    records = progress.stage_records(read(events))
    assert [(r["stage"], r.get("part_of")) for r in records] == [
        ("generate", None), ("engine start", "generate")]
    generate, engine = records
    assert generate["cpu_s"] >= engine["cpu_s"] > 0  # the parent's CPU includes its parts'
    table = stage_table(records)
    assert table[2].startswith("  engine start") and "4 prompts" in table[2]


def test_stage_records_count_a_stage_once_however_many_workers_passed(events):
    for worker in range(2):
        with progress.stage("plant") as current:
            if worker:
                current.cached()
    assert [r["status"] for r in progress.stage_records(read(events))] == ["built"]


def test_a_stage_s_parts_stay_its_parts_when_another_worker_s_pass_is_kept():
    """Warm, both workers pass through `prepare` and its cached parts; the first to end
    `prepare` may not be the first to end a part."""
    def start(id, label, time, parent=None):
        return {**event("start", label, time), "id": id, "parent": parent}

    def end(id, label, time):
        return {**ended(label, time, status="cached", wall_s=0.0), "id": id}

    events = [start("a", "prepare", 0.0), start("b", "prepare", 0.1),
              start("a1", "build tiny", 0.2, parent="a"), end("a1", "build tiny", 0.3),
              start("b1", "build tiny", 0.4, parent="b"), end("b1", "build tiny", 0.5),
              end("b", "prepare", 0.6), end("a", "prepare", 0.7)]
    records = progress.stage_records(events)
    assert [(r["stage"], r.get("part_of")) for r in records] == [
        ("prepare", None), ("build tiny", "prepare")]


class Recorded:
    def __init__(self, terminal: bool) -> None:
        self.lines, self.statuses = [], []
        self.status = self.statuses.append if terminal else None

    def line(self, text):
        self.lines.append(text)


def event(kind, label, time, **more):
    return {"event": kind, "id": label, "label": label, "time": time, "done": 0, "total": None,
            "unit": "step", **more}


def ended(label, time, status="built", **more):
    return event("end", label, time, status=status, wall_s=more.pop("wall_s", 1.0),
                 cpu_s=1.5, work=more.pop("work", {}), **more)


def test_in_a_log_a_stage_is_a_line_when_it_lasts_and_one_when_it_ends():
    log = Recorded(terminal=False)
    display = progress.Display(log)
    display.handle(event("start", "build tiny", 0.0))
    display.handle(ended("build tiny", 0.5, status="cached"))
    display.handle(event("start", "plant", 1.0))
    display.handle(event("advance", "plant", 1.5, done=10, total=100))
    display.refresh(now=2.0)  # open for 1 s: no line yet
    display.refresh(now=4.0)
    display.refresh(now=30.0)  # a line a minute, not more
    display.refresh(now=65.0)
    display.handle(ended("plant", 70.0, wall_s=69.0, done=100, work={"tokens": 12_000}))
    display.handle(event("start", "plant", 71.0))  # another worker passes through: not shown
    display.handle(ended("plant", 71.1, status="cached"))
    assert log.lines == [
        "LeakBench build tiny: cached",
        "LeakBench plant: 3.0 s, 10/100 steps, 3.3/s, about 27.0 s left",
        "LeakBench plant: 1 min 04 s, 10/100 steps, 0.2/s, about 9 min 36 s left",
        "LeakBench plant: built in 1 min 09 s (CPU 1.5 s, 100 steps, 12,000 tokens)",
    ]


def test_on_a_terminal_the_open_stage_is_a_live_line():
    terminal = Recorded(terminal=True)
    display = progress.Display(terminal)
    display.handle(event("start", "unlearn kl", 0.0))
    display.handle(event("advance", "unlearn kl", 5.0, done=50, total=200))
    display.refresh(now=10.0)
    assert terminal.statuses[-1] == ("LeakBench unlearn kl: 10.0 s, 50/200 steps, 5.0/s, "
                                     "about 30.0 s left")
    display.handle(ended("unlearn kl", 12.0))
    assert terminal.lines == ["LeakBench unlearn kl: built in 1.0 s (CPU 1.5 s)"]


def test_a_line_being_written_is_left_for_the_next_read(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"event": "start"}) + "\n" + '{"event": "en')
    events, offset = progress.read_events(path)
    assert events == [{"event": "start"}]
    with open(path, "a") as f:
        f.write('d"}\n')
    assert progress.read_events(path, offset)[0] == [{"event": "end"}]


def test_a_stage_s_end_line_counts_the_cpu_of_its_parts():
    log = Recorded(terminal=False)
    display = progress.Display(log)
    display.handle(event("start", "generate", 0.0))
    display.handle(event("start", "engine start", 0.1, parent="generate"))
    display.handle(ended("engine start", 3.0))
    display.handle(ended("generate", 4.0))
    assert log.lines[-1] == "LeakBench generate: built in 1.0 s (CPU 3.0 s)"


def test_a_stage_whose_every_part_was_cached_is_cached(events):
    for cached in (True, False):
        with progress.stage("prepare"):
            with progress.stage("plant") as part:
                if cached:
                    part.cached()
    ends = [e for e in read(events) if e["event"] == "end" and e["label"] == "prepare"]
    assert [e["status"] for e in ends] == ["cached", "built"]


def test_a_stage_another_worker_opened_meanwhile_leaves_the_live_line_when_the_first_ends():
    terminal = Recorded(terminal=True)
    display = progress.Display(terminal)
    display.handle(event("start", "prepare", 0.0))
    display.handle({**event("start", "prepare", 0.5), "id": "worker-2"})  # waits for the lock
    display.handle(ended("prepare", 9.0))
    terminal.statuses.clear()
    display.refresh(now=10.0)
    assert terminal.statuses == [] and display.open == {}
