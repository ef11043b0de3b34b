"""Functional tests: per algorithm, every capability-probe task and HumanEval problem, the
model's completion executed with the problem's tests in the sandbox (or its verdict from an
earlier run, leakbench.verdicts)."""

import pytest

from leakbench import outcomes
from leakbench.verdicts import run_task


@pytest.mark.functional
def test_functional(algorithm, functional_task, prepared, run_options, verdict_cache, redactor,
                    record_property):
    request = functional_task.request(run_options.decoding)
    results = [run_task(functional_task, text, verdict_cache)
               for text in prepared.of(algorithm, request)]
    outcomes.functional(record_property, prepared.describe(algorithm), algorithm,
                        functional_task, results, redactor=redactor)
