"""Memorization tests: per algorithm, the privacy metrics of its variant (leakbench.privacy_metrics)
recorded as values of the result table, and a verdict by CodeEraser's rule: the variant has
forgotten when its memorization accuracy on the forget secrets is below the one it gets on holdout
values it never saw (leakbench.memorization.forgotten). The planted model fails by construction."""

import json

import pytest

from leakbench.memorization import forgotten
from leakbench.privacy_metrics import REFERENCE, aggregate
from leakbench.record_property import PROPERTY


@pytest.fixture(scope="session")
def metric_groups(run_options) -> tuple[str, ...]:
    """The --metrics groups; skips the memorization tests before any model is built when there is
    nothing to compute."""
    if not run_options.metrics:
        pytest.skip("--metrics=none")
    if run_options.endpoint:
        pytest.skip("--endpoint: the privacy metrics need the engine's prompt log-probs of token "
                    "ids and the weights (Min-K%++); run without --endpoint")
    return run_options.metrics


@pytest.mark.memorization
def test_memorization(algorithm, metric_groups, prepared, record_property):
    metrics = aggregate(prepared.privacy[algorithm], prepared.privacy.get(REFERENCE),
                        metric_groups)
    for name, value in metrics.items():
        record_property(PROPERTY, json.dumps({**prepared.describe(algorithm), "metric": name,
                                              "algorithm": algorithm, "value": value}))
    if "ma" in metrics and not forgotten(metrics["ma"], metrics["ma_holdout"]):
        pytest.fail(f"{algorithm} still memorizes the forget set: MA {metrics['ma']:.3f} on its "
                    f"secrets, not below {metrics['ma_holdout']:.3f} on holdout values it never "
                    "saw", pytrace=False)
