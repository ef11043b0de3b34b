"""The forget and holdout sets committed in the repository's cases/ directory: where they lie and
the seed they were generated from.

scripts/generate_cases.py writes them with Faker; a run only reads them, so nothing here needs
the generator. A results file names the seed (reports.manifest).
"""

from __future__ import annotations

from pathlib import Path

CASES_DIR = Path(__file__).resolve().parent.parent / "cases"
GENERATOR_SEED = 2502_05739
