"""The end of a run: the result table, the report files and the gates' exit status.

Reporting happens on the controller only (the process without `workerinput` under xdist): each
test's `leakbench` record arrives with its report in `pytest_runtest_logreport` and is kept in
`config.stash`; `pytest_sessionfinish` builds the summary from those records (with the metrics of
`pytest_leakbench_row_metrics` implementations), writes the report files and, when --gate is
given, sets the exit status; `pytest_terminal_summary` prints the tables.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from leakbench import teardown_lookup
from leakbench.options import OptionError, check_writable, parse_output_dir
from leakbench.plugin.command_line import DEFAULT_REPORT_DIR, RUN_OPTIONS
from reports.files import write_reports
from reports.manifest import build_manifest
from reports.records import Collected, Record
from reports.render import render
from reports.summary import Summary, summarize

COLLECTED = pytest.StashKey[Collected]()  # set on the controller only
REPORT_DIR = pytest.StashKey[Path]()
SUMMARY = pytest.StashKey[Summary]()
REPORT_LINE = pytest.StashKey[str]()  # where the report files went, or why they did not
REPORT_SECONDS = pytest.StashKey[float]()  # how long writing them took


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # an xdist worker: its reports reach the controller, which reports
    try:  # refused before any stage runs, and without creating the directory
        directory = parse_output_dir("--report-dir", config.getoption("report_dir")
                                     or config.rootpath / DEFAULT_REPORT_DIR)
        check_writable("--report-dir", directory)
    except OptionError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[REPORT_DIR] = directory
    collected = config.stash[COLLECTED] = Collected()
    config.pluginmanager.register(_RecordCollector(collected), "leakbench-records")


def _asked_for_report_chars(config: pytest.Config) -> bool:
    """Whether the run chose pytest's short-summary letters itself (-r / --report-chars)."""
    given = [*config.invocation_params.args, *config.getini("addopts")]
    return any(arg.startswith(("-r", "--report-chars")) for arg in map(str, given))


def pytest_sessionstart(session: pytest.Session) -> None:
    """A benchmark run fails thousands of tests by design (a leak is a failed test): pytest's
    FAILURES section is given a lookup in linear time, and its short summary leaves out the
    failed tests' lines unless the run asks with -r (e.g. -rfE), so that the screen ends with the
    result table; every failure stays in the report files and junit XML. An xdist worker writes
    no summary sections at all: nobody sees its terminal, and the controller writes them from
    the reports (a worker spent seconds of CPU on its half of FAILURES at the end of a run)."""
    if hasattr(session.config, "workerinput"):
        session.config.option.no_summary = True
        return
    reporter = session.config.pluginmanager.getplugin("terminalreporter")
    if reporter is None:
        return
    teardown_lookup.install(reporter)
    if not _asked_for_report_chars(session.config):
        reporter.reportchars = reporter.reportchars.replace("f", "")


class _RecordCollector:
    """`pytest_runtest_logreport` gets only the report: this object hands it the run's
    `Collected`, which lives in `config.stash`."""

    def __init__(self, collected: Collected) -> None:
        self.collected = collected

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collected.add(report)


def _row_metrics(config: pytest.Config):
    """The `pytest_leakbench_row_metrics` implementations, as `summarize` asks for extra metrics."""

    def extra(model: str | None, algorithm: str, records: list[Record]) -> dict[str, float]:
        merged: dict[str, float] = {}
        for result in config.hook.pytest_leakbench_row_metrics(
                config=config, model=model, algorithm=algorithm, records=records):
            clash = sorted(set(merged) & set(result or {}))
            if clash:
                raise ValueError(f"pytest_leakbench_row_metrics: {', '.join(clash)} returned by "
                                 "two implementations; rename one")
            merged.update(result or {})
        return merged

    return extra


def _write_reports(config: pytest.Config, summary: Summary, exitstatus: int) -> str:
    """Write the report files; the line that says where they are, or why they are not."""
    collected, directory = config.stash[COLLECTED], config.stash[REPORT_DIR]
    manifest = build_manifest(config.stash[RUN_OPTIONS], config.invocation_params.args,
                              collected.started, int(exitstatus))
    try:
        written = write_reports(summary, manifest, directory, update_json=lambda results: (
            config.hook.pytest_leakbench_update_json(config=config, results=results)))
    except OSError as err:
        return f"LeakBench could not write its reports to {directory}: {err}"
    return f"LeakBench reports in {directory}: {', '.join(path.name for path in written)}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if COLLECTED not in config.stash:
        return  # an xdist worker: its reports reach the controller, which reports
    options, collected = config.stash[RUN_OPTIONS], config.stash[COLLECTED]
    if config.option.collectonly or not (collected.records or options.gates):
        return
    summary = config.stash[SUMMARY] = summarize(collected, options.gates,
                                                extra_metrics=_row_metrics(config))
    if collected.records:
        started = time.monotonic()
        config.stash[REPORT_LINE] = _write_reports(config, summary, exitstatus)
        config.stash[REPORT_SECONDS] = round(time.monotonic() - started, 3)
    # Gates decide between success and failure (a leak is a failed test, so failed tests alone
    # do not fail a gated run); an interrupted or broken run keeps pytest's own status.
    if options.gates and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        passed = summary.gates_hold
        session.exitstatus = pytest.ExitCode.OK if passed else pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if SUMMARY not in config.stash:
        return
    terminalreporter.write_sep("=", "LeakBench results")
    for line in render(config.stash[SUMMARY], markdown=False).splitlines():
        terminalreporter.write_line(line)
    if REPORT_LINE in config.stash:
        terminalreporter.write_line(config.stash[REPORT_LINE])
