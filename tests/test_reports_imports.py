"""The reports' own import graph: reading records, building tables and writing files needs none of
pytest, the engine, the training stack or the data generator, so `python -m reports.compare` and
any tool that reads results stay light. The pytest plugin imports the reports, not the reverse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPORTS = Path(__file__).resolve().parent.parent / "reports"
MODULES = sorted(f"reports.{path.stem}" for path in REPORTS.glob("*.py")
                 if path.stem != "__init__")
HEAVY = ("pytest", "_pytest", "vllm", "torch", "faker", "transformers")


@pytest.mark.parametrize("module", MODULES)
def test_a_reports_module_imports_nothing_heavy(module: str) -> None:
    script = (f"import sys, {module}\n"
              f"print(' '.join(name for name in {HEAVY!r} if name in sys.modules))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert run.stdout.strip() == "", f"{module} imports {run.stdout.strip()}"


def test_every_reports_module_is_checked() -> None:
    assert "reports.records" in MODULES and "reports.manifest" in MODULES
