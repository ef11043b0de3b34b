"""Hooks for extending LeakBench's report from a conftest.py or another plugin.

Both run on the controller (the process that writes the report) once the tests have run. A
number added by `pytest_leakbench_row_metrics` becomes a column of the result table ("Leaks and
utility", after LeakBench's own columns), of results.csv and of results.json's rows;
`pytest_leakbench_update_json` sees results.json's content last, before it is written.
"""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_leakbench_row_metrics(config, model, algorithm, records):
    """More metrics for one row of the result table: a dict of name -> number, or None.

    `records` are the row's `reports.records.Record`s, one per test of this model and algorithm:
    its metric (e.g. "direct_leak"), the probe's or problem's id (e.g. "email-dict-0042"), the
    judged category ("none", "direct", "partial", ...) and counts; an attack test's two records
    carry its `attack` (e.g. "quant4"), the others None. A name that LeakBench's own metrics or
    another implementation already use is an error. Example, in a conftest.py::

        def pytest_leakbench_row_metrics(config, model, algorithm, records):
            emails = [r for r in records if r.metric == "direct_leak" and r.attack is None
                      and r.id.startswith("email-")]
            if emails:
                leaking = sum(r.category != "none" for r in emails)
                return {"email_direct_leak": leaking / len(emails)}
    """


@pytest.hookspec
def pytest_leakbench_update_json(config, results):
    """Change results.json's content, a dict (format "leakbench-results/1"), in place before it
    is written; the other report files are not affected.

    Example: record the CI job that produced the run::

        def pytest_leakbench_update_json(config, results):
            results["manifest"]["ci_job"] = os.environ.get("CI_JOB_ID")
    """
