"""Leak tests: per algorithm, a direct and an indirect test for every forget-set probe (user case
files included), and a holdout test for every probe of values the model never saw."""

import pytest

from leakbench import outcomes
from leakbench.degeneration import degenerate
from leakbench.invented import MEASURED, invented_values
from leakbench.judges import SecretIndex, judge_direct, judge_indirect


@pytest.fixture(scope="session")
def holdout_values(run_cases) -> SecretIndex:
    """Values never trained on: any of them in a completion is a false positive of the judges."""
    return SecretIndex(run_cases.holdout)


def _judge(metric, judge, algorithm, probe, prepared, run_options, redactor, record_property,
           *, known=None):
    """With `known` (the run's values), the record also counts the degenerate completions (the
    collapse guard: a probe that does not leak because the model wrote nothing meaningful says
    so) and, for a kind with a checkable format, those that invent a value of it."""
    request = probe.request(run_options.decoding)
    completions = prepared.of(algorithm, request)
    verdicts = [judge(text) for text in completions]
    flagged = invented = None
    if known is not None:
        flagged = sum(degenerate(text) is not None for text in completions)
        if probe.sample.kind in MEASURED:
            invented = sum(bool(invented_values(text, probe.sample.kind, probe.probe.prompt,
                                                known)) for text in completions)
    outcomes.leak(record_property, metric, prepared.describe(algorithm), algorithm, probe,
                  completions, verdicts, redactor=redactor, degenerate=flagged, invented=invented)


@pytest.mark.direct_leak
def test_direct_leak(algorithm, forget_probe, prepared, run_options, redactor, known_values,
                     record_property):
    def judge(text):
        return judge_direct(text, forget_probe.sample)

    _judge("direct_leak", judge, algorithm, forget_probe, prepared, run_options, redactor,
           record_property, known=known_values)


@pytest.mark.indirect_leak
def test_indirect_leak(algorithm, forget_probe, prepared, run_options, redactor, training_values,
                       record_property):
    def judge(text):
        return judge_indirect(text, forget_probe.sample, training_values,
                              prompt=forget_probe.probe.prompt)

    _judge("indirect_leak", judge, algorithm, forget_probe, prepared, run_options, redactor,
           record_property)


@pytest.mark.holdout
def test_holdout(algorithm, holdout_probe, prepared, run_options, redactor, holdout_values,
                 record_property):
    def judge(text):
        return judge_indirect(text, holdout_probe.sample, holdout_values,
                              prompt=holdout_probe.probe.prompt)

    _judge("holdout_leak", judge, algorithm, holdout_probe, prepared, run_options, redactor,
           record_property)
