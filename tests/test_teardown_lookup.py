"""pytest's FAILURES section with the indexed teardown lookup (leakbench.teardown_lookup): the
same reports found as pytest's own lookup finds, so the same output."""

from __future__ import annotations

from types import SimpleNamespace

from _pytest.terminal import TerminalReporter

from leakbench.teardown_lookup import TeardownIndex

pytest_plugins = ["pytester"]

SUITE = """
import pytest

@pytest.fixture
def says_goodbye(request):
    yield
    print(f"goodbye from {request.node.name}")

@pytest.mark.parametrize("n", range(6))
def test_case(says_goodbye, n):
    assert n % 2 == 0, f"odd {n}"

def test_without_teardown_output():
    assert False, "plain failure"
"""


def test_the_index_finds_what_pytests_lookup_finds(benchmark_pytester):
    benchmark_pytester.makepyfile(SUITE)
    recorder = benchmark_pytester.inline_run()
    reporter = recorder.getcall("pytest_sessionfinish").session.config.pluginmanager.getplugin(
        "terminalreporter")
    assert isinstance(reporter._get_teardown_reports, TeardownIndex)
    failed = reporter.getreports("failed")
    assert len(failed) == 4
    asked = [getattr(report, "id", report.nodeid) for report in failed]  # as pytest 9 or 8 asks
    found = [reporter._get_teardown_reports(node_id) for node_id in asked]
    assert found == [TerminalReporter._get_teardown_reports(reporter, node_id)
                     for node_id in asked]
    assert [len(reports) for reports in found] == [1, 1, 1, 1]


def test_each_failure_shows_its_own_teardown_output(benchmark_pytester):
    benchmark_pytester.makepyfile(SUITE)
    # -rf: the plugin lists no failures otherwise; no warnings summary: a worker that imported
    # the plugin before warns that it cannot rewrite it, in whichever run imports it first
    shown = ("-rf", "-p", "no:warnings")
    indexed = benchmark_pytester.runpytest(*shown).outlines
    plain = benchmark_pytester.runpytest(*shown, "-p", "no:leakbench.plugin").outlines

    def failures(lines):
        return lines[lines.index(next(line for line in lines if " FAILURES " in line)):
                     lines.index(next(line for line in lines if "short test summary" in line))]

    assert failures(indexed) == failures(plain)
    shown = "\n".join(failures(indexed))
    for n in (1, 3, 5):
        assert shown.count(f"goodbye from test_case[{n}]") == 1
    assert "goodbye from test_case[0]" not in shown


def test_reports_that_arrive_later_are_found():
    def teardown(name):
        return SimpleNamespace(when="teardown", id=(name,), nodeid=name)  # id: not a str

    first, second = teardown("a"), teardown("b")
    reporter = SimpleNamespace(stats={"": [first]})
    reporter.getreports = lambda name: list(reporter.stats.get(name, ()))
    index = TeardownIndex(reporter)
    assert index(first.id) == [first] and index(second.id) == []
    reporter.stats[""].append(second)
    assert index(second.id) == [second]
