"""Memorization tests: per algorithm, the privacy metrics of its variant (leakbench.privacy_metrics)
recorded as values of the result table, and a verdict by CodeEraser's rule: the variant has
forgotten when its memorization accuracy on the forget secrets is below the one it gets on holdout
values it never saw (leakbench.memorization.forgotten). A mean can hide a few secrets held whole,
so each forget secret also has its own test: forgotten when none of its calibrated scores is above
the holdout values' 95th percentile. The planted model fails both by construction."""

import json

import pytest

from leakbench.cases import copies
from leakbench.memorization import CALIBRATION_QUANTILE, forgotten
from leakbench.privacy_metrics import CALIBRATED_SCORES, REFERENCE, aggregate, still_held
from leakbench.record_property import PROPERTY
from reports.records import SECRET_METRIC


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


@pytest.fixture(scope="session")
def forget_index(run_cases) -> dict[str, int]:
    """Each reported forget sample's position among them: where its scores are."""
    return {sample.id: index for index, sample in enumerate(run_cases.reported)}


@pytest.fixture(scope="session")
def forget_copies(run_cases) -> dict[str, int]:
    """Each forget sample's copies: the texts of the forget set that hold its value."""
    return copies(run_cases.forget)


@pytest.mark.memorization
def test_forgotten(algorithm, forget_sample, metric_groups, prepared, forget_index,
                   forget_copies, record_property):
    """Collected only where --metrics measures a per-secret score (leakbench.plugin.collection)."""
    calibrated = [score for score, group in CALIBRATED_SCORES.items() if group in metric_groups]
    held = still_held(prepared.privacy[algorithm], forget_index[forget_sample.id])
    record_property(PROPERTY, json.dumps({
        **prepared.describe(algorithm), "metric": SECRET_METRIC, "algorithm": algorithm,
        "id": forget_sample.id, "split": "forget", "kind": forget_sample.kind,
        "context": forget_sample.context, "copies": forget_copies[forget_sample.id],
        "category": "held" if held else "forgotten",
        "positives": len(held), "samples": len(calibrated)}))
    if held:
        scores = ", ".join(f"{score} {value:.3f} > {threshold:.3f}"
                           for score, (value, threshold) in held.items())
        pytest.fail(f"{algorithm} still holds {forget_sample.id}: {scores} (each above the "
                    f"holdout values' {CALIBRATION_QUANTILE:.0%} quantile)", pytrace=False)
