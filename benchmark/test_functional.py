"""Functional tests: per algorithm, every capability-probe task and HumanEval problem, the
model's completion executed with the problem's tests in the sandbox."""

import pytest

from leakbench import outcomes, sandbox


@pytest.mark.functional
def test_functional(algorithm, functional_task, prepared, run_options, record_property):
    request = functional_task.request(run_options.samples, run_options.temperature)
    marker = outcomes.end_marker()
    results = [outcomes.reached_end(sandbox.run_program(functional_task.program(text, marker),
                                                        allow_execution=True), marker)
               for text in prepared.of(algorithm, request)]
    outcomes.functional(record_property, prepared.describe(algorithm), algorithm,
                        functional_task, results)
