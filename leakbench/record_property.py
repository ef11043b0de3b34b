"""The record a benchmark test leaves on its report: one `leakbench` user property.

Its value is a small JSON object: metric, algorithm, the variant's description, and either a
probe or problem id with its verdict category and counts (for a leak probe also the end of its
prompt and one completion, which the test masked with the run's redactor unless --show-secrets)
or, for a per-algorithm metric, a value. The tests write it (leakbench.outcomes,
benchmark/test_privacy_metrics.py) and the reports read it off the test reports
(reports.records). This module is the one name both sides share, kept apart from the
pytest-facing writer so that the reports import nothing of pytest.
"""

from __future__ import annotations

PROPERTY = "leakbench"
