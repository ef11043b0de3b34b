"""Retraining without the forget set: the target an unlearned model should match. It has no loss:
the pipeline plants again from the base model without the forget samples (leakbench.plant)."""

from __future__ import annotations

from algorithms import Algorithm

ALGORITHM = Algorithm(
    "retrain", "fine-tuned without the forget set: the reference an unlearned model should match",
    None, kind="retrain")
