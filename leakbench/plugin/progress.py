"""The run's stages where the person who started it looks, and what each cost at its end.

Every process of a run reports its stages (leakbench.progress: building, planting, unlearning,
attacks, engine start, generation, Min-K%++) as lines of one events file. The controller (the
pytest process, with -n N the pytest-xdist controller) names that file in `pytest_configure`,
before pytest-xdist starts its workers, so that the workers and the engine processes they start
inherit it. From `pytest_sessionstart` to `pytest_sessionfinish` a thread follows the file and
draws it through the terminal reporter (`progress.Display`): a live line on a terminal, one line
per stage start and end in a log.

At the end the stage records, with the tests' and the sandbox's times from the test reports and
the report files' own time, go into results.json's manifest (through LeakBench's own
`pytest_leakbench_update_json` hook) and into a table printed just before the result table.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from leakbench import progress
from leakbench.plugin.reporting import REPORT_SECONDS

EVENTS = pytest.StashKey[Path]()
FOLLOWER = pytest.StashKey["_Follower"]()
RECORDS = pytest.StashKey[list]()
TEST_TIMES = pytest.StashKey["_TestTimes"]()
_PREVIOUS_ENV = pytest.StashKey["str | None"]()
REFRESH_S = 1.0


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # an xdist worker reports to the file it inherited
    events = Path(tempfile.mkdtemp(prefix="leakbench-progress-")) / "events.jsonl"
    events.touch()
    config.stash[EVENTS] = events
    config.stash[_PREVIOUS_ENV] = os.environ.get(progress.EVENTS_ENV)
    os.environ[progress.EVENTS_ENV] = str(events)
    times = config.stash[TEST_TIMES] = _TestTimes()
    config.pluginmanager.register(times, "leakbench-test-times")


def pytest_unconfigure(config: pytest.Config) -> None:
    if EVENTS not in config.stash:
        return
    previous = config.stash[_PREVIOUS_ENV]
    if previous is None:
        os.environ.pop(progress.EVENTS_ENV, None)
    else:
        os.environ[progress.EVENTS_ENV] = previous
    shutil.rmtree(config.stash[EVENTS].parent, ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if EVENTS not in config.stash or reporter is None:
        return
    follower = config.stash[FOLLOWER] = _Follower(config.stash[EVENTS], _Terminal(reporter))
    config.pluginmanager.register(follower, "leakbench-progress-follower")
    follower.start()


@pytest.hookimpl(tryfirst=True)  # before reporting's, which writes results.json
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if EVENTS not in config.stash:
        return
    if FOLLOWER in config.stash:
        config.stash[FOLLOWER].stop()
    events, _ = progress.read_events(config.stash[EVENTS])
    config.stash[RECORDS] = [*progress.stage_records(events),
                             *config.stash[TEST_TIMES].records(events)]


def pytest_leakbench_update_json(config: pytest.Config, results: dict) -> None:
    if RECORDS not in config.stash:
        return
    records = config.stash[RECORDS]
    results["manifest"]["stages"] = records
    results["manifest"]["machine"].update(_training_facts(records))


def _training_facts(records: list[dict]) -> dict:
    """How this run trained (device, dtype, autocast, torch threads), from its first training
    stage; nothing when every stage was cached."""
    for record in records:
        if "threads" in record["work"]:
            work = record["work"]
            return {"training_device": work["device"], "training_dtype": work["dtype"],
                    "training_autocast": work["autocast"], "torch_threads": work["threads"]}
    return {}


@pytest.hookimpl(tryfirst=True)  # the result table comes last
def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    records = config.stash.get(RECORDS, None)
    if not records:
        return
    if REPORT_SECONDS in config.stash:
        records = [*records, {"stage": "report files", "status": "written",
                              "wall_s": config.stash[REPORT_SECONDS], "cpu_s": None,
                              "work": {}}]
    terminalreporter.write_sep("-", "LeakBench stages")
    for line in stage_table(records):
        terminalreporter.write_line(line)


def stage_table(records: list[dict]) -> list[str]:
    """The stage records as a table: stage (a part indented under its stage), built or cached,
    wall, CPU and work."""
    rows = [("stage", "status", "wall", "CPU", "work")]
    depth: dict[str, int] = {}
    for record in records:
        cached = record["status"] == "cached"
        depth[record["stage"]] = depth.get(record.get("part_of"), -1) + 1
        rows.append(("  " * depth[record["stage"]] + record["stage"], record["status"],
                     "" if cached else progress.duration(record["wall_s"]),
                     "" if cached or record["cpu_s"] is None
                     else progress.duration(record["cpu_s"]),
                     "" if cached else progress.describe_work(record.get("steps", 0),
                                                              record["work"])))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[4]]).rstrip()
            for row in rows]


class _TestTimes:
    """The tests' part of the stage records, from their reports: the tests' wall time after the
    last preparation stage ended, and the summed call time of the functional tests, whose
    programs run in the sandbox."""

    def __init__(self) -> None:
        self.tests = self.functional = 0
        self.sandbox_s = 0.0
        self.last_report: float | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.last_report = time.time()
        if report.when != "call":
            return
        self.tests += 1
        if "functional" in report.keywords:
            self.functional += 1
            self.sandbox_s += report.duration

    def records(self, events: list[dict]) -> list[dict]:
        if not self.tests or self.last_report is None:
            return []
        prepared = max((event["time"] for event in events if event["event"] == "end"),
                       default=None)
        records = []
        if prepared is not None:
            records.append({"stage": "tests", "status": "ran", "cpu_s": None,
                            "wall_s": round(max(0.0, self.last_report - prepared), 3),
                            "work": {"tests": self.tests}})
        if self.functional:
            records.append({"stage": "sandbox (functional tests' time, all workers)",
                            "status": "ran", "wall_s": round(self.sandbox_s, 3),
                            "cpu_s": None, "work": {"tests": self.functional}})
        return records


class _Terminal:
    """`progress.Output` on pytest's terminal reporter: the live line where the output is a
    terminal, lines otherwise."""

    def __init__(self, reporter) -> None:
        self.reporter = reporter
        self.status = self._status if reporter.isatty() else None
        self.live = False

    def line(self, text: str) -> None:
        if self.live:
            self.reporter.rewrite(text, erase=True)
            self.reporter.write("\n", flush=True)
            self.live = False
        else:
            self.reporter.write_line(text)
            self.reporter.flush()

    def _status(self, text: str) -> None:
        self.reporter.rewrite(text[: self.reporter._tw.fullwidth - 1], erase=True)
        self.reporter.flush()
        self.live = True


class _Follower(threading.Thread):
    """Reads the events file's new lines every REFRESH_S seconds and draws them; also before
    pytest draws a test's outcome when the file has grown, so that the last stage's line comes
    before the tests' dots. (A run has tens of thousands of test reports and, once the tests
    run, hardly any new events: reading the file for each report cost the controller more CPU
    than drawing the report.)"""

    def __init__(self, events: Path, output: progress.Output) -> None:
        super().__init__(name="leakbench-progress", daemon=True)
        self.events, self.display = events, progress.Display(output)
        self.offset = 0
        self.stopping = threading.Event()
        self.drawing = threading.Lock()

    def run(self) -> None:
        while not self.stopping.wait(REFRESH_S):
            self._draw_new_events()
        self._draw_new_events()

    def stop(self) -> None:
        self.stopping.set()
        self.join()

    @pytest.hookimpl(tryfirst=True)  # before the terminal reporter draws the outcome
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.events.stat().st_size > self.offset:
            self._draw_new_events()

    def _draw_new_events(self) -> None:
        with self.drawing:
            events, self.offset = progress.read_events(self.events, self.offset)
            for event in events:
                self.display.handle(event)
            self.display.refresh()
