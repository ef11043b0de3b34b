"""pytest's FAILURES section in linear time, with the same output.

For each failed test, pytest's terminal reporter shows what the test's teardown printed, and finds
that teardown report by scanning every passed setup and teardown report of the run
(`TerminalReporter._get_teardown_reports`): quadratic in the number of tests (pytest issue
#13360). A benchmark run fails thousands of tests by design (a leak is a failed test): a warm run
of `tiny` with every algorithm, 4,124 failures among 11,584 tests, spent about 30 s of its 67 s
there, after the last test, on the controller; each xdist worker builds the same summary for its
half, unseen, before it exits. `install` gives one reporter a lookup that indexes those reports
once, and again only when more have arrived; which reports it returns is unchanged.
"""

from __future__ import annotations

from collections import defaultdict


def install(reporter) -> bool:
    """Give `reporter` (pytest's TerminalReporter) the indexed lookup; False, changing nothing,
    when this pytest has no such lookup."""
    if not callable(getattr(reporter, "_get_teardown_reports", None)):
        return False
    reporter._get_teardown_reports = TeardownIndex(reporter)
    return True


class TeardownIndex:
    """The passed teardown reports of a test, as pytest's own lookup finds them: among
    ``getreports("")``, those with ``when == "teardown"`` whose id equals the one asked for. The
    id is a string (``report.nodeid``) in pytest 8 and a structured ``NodeId`` (``report.id``)
    since; the index is keyed by the attribute of the kind it is asked with."""

    def __init__(self, reporter) -> None:
        self._reporter = reporter
        self._built: tuple[str, int] | None = None  # (attribute, how many reports) indexed
        self._by_id: defaultdict = defaultdict(list)

    def __call__(self, node_id) -> list:
        attribute = "nodeid" if isinstance(node_id, str) else "id"
        count = len(self._reporter.stats.get("", ()))
        if self._built != (attribute, count):
            self._by_id = defaultdict(list)
            for report in self._reporter.getreports(""):
                if report.when == "teardown":
                    self._by_id[getattr(report, attribute)].append(report)
            self._built = (attribute, count)
        return list(self._by_id.get(node_id, ()))
