"""Secrets: no forget-set value (secrets and owners' other values longer than five characters)
reaches the terminal, the junit XML, the report files or the engine's log of a run, and
--show-secrets is the only way to see one.

Where secrets may be (decided, see docs/RELIABILITY.md): the cache is the run's private data store,
like cases/ and the weights themselves. Its completion shards and the engine's job and out files
hold prompts and completions, hence values; everything a run prints or publishes must not.

Two runs are scanned: the shared micro run (the default options without attacks or memorization
tests; micro leaks little or nothing) and a run against a fake --endpoint whose every answer to a
forget probe is a value, so that every leak test fails and reports a leak: the worst case for what
failure messages and reports might carry. The memorization tests' messages are scanned in
tests/test_privacy_metrics.py's run of them.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from reliability_helpers import (
    ROOT,
    SHOWN_SAMPLE,
    as_run,
    files_under,
    forget_scan,
)

from leakbench import outcomes
from leakbench.judges import judge_direct
from leakbench.masks import redact
from leakbench.probes import PrivacyData
from leakbench.redaction import Redactor
from leakbench.value_scan import ValueScan

pytestmark = [pytest.mark.engine]

ALLOWED_IN_CACHE = ("completions/", "engine/")  # prompts and completions: see the docstring
ENGINE_LOG = "engine.log"


@pytest.fixture(scope="module")
def secrets() -> ValueScan:
    scan = forget_scan()
    assert scan.count > 1000
    return scan


def assert_clean(found: list[str], where: str) -> None:
    assert found == [], f"{len(found)} secrets in {where}, e.g. {found[0][:2]}…"


# --- The default run ---------------------------------------------------------------------------


@pytest.mark.training
def test_default_run_terminal_output(first_run, secrets) -> None:
    assert_clean(secrets.found(first_run.output), "the terminal output")


@pytest.mark.training
def test_default_run_junit_xml(first_run, secrets) -> None:
    assert_clean(secrets.found_in_file(Path(first_run.junit)), "the junit XML")


@pytest.mark.training
def test_default_run_report_files(first_run, secrets) -> None:
    reports = first_run.reports()
    assert {p.name for p in reports} >= {"results.md", "results.csv", "results.json"}
    for path in reports:
        assert_clean(secrets.found_in_file(path), str(path))


@pytest.mark.training
def test_default_run_engine_log_and_other_cache_files(first_run, secrets) -> None:
    cache = Path(first_run.cache)
    logs = list(cache.glob("engine/*/engine.log"))
    assert logs
    for path in files_under(cache):
        relative = str(path.relative_to(cache))
        if relative.startswith(ALLOWED_IN_CACHE) and path.name != ENGINE_LOG:
            continue
        if relative.startswith(("base-", "planted/", "variant/")):
            continue  # the seeded artifacts, copied before the run: the model's own data
        assert_clean(secrets.found_in_file(path), relative)


# --- Every probe leaks -------------------------------------------------------------------------


def test_leaking_run_reports_its_leaks(leaky) -> None:
    """The premise of the checks below: the fake model's values were judged leaks."""
    assert "direct_leak: direct leak of the" in leaky.output
    assert "FAILED benchmark/test_leaks.py::test_indirect_leak" in leaky.output


def test_leaking_run_terminal_output(leaky, secrets) -> None:
    assert_clean(secrets.found(leaky.output), "the terminal output")


def test_leaking_run_junit_xml(leaky, secrets) -> None:
    text = Path(leaky.junit).read_text()
    assert "direct leak of the" in text
    assert_clean(secrets.found(text), "the junit XML")


def test_leaking_run_report_files(leaky, secrets) -> None:
    for path in leaky.reports():
        assert_clean(secrets.found_in_file(path), str(path))


def test_show_secrets_shows_the_secret(endpoint_runs) -> None:
    run = as_run(endpoint_runs["shown"])
    sample = next(s for s in PrivacyData.load(ROOT / "cases").forget if s.id == SHOWN_SAMPLE)
    assert run.returncode == 1, run.output[-3000:]
    assert f"direct leak of the {sample.kind} {sample.secret} in 1/1" in run.output
    page = (Path(run.report_dir) / "results.html").read_text(encoding="utf-8")
    assert sample.secret in page  # the probe's completion, unmasked as asked


# --- The outcome of one leak test --------------------------------------------------------------


class FakeProperty:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    def __call__(self, name: str, value: str) -> None:
        self.recorded.append((name, value))


@pytest.fixture(scope="module")
def probe():
    from leakbench.probes import LeakProbe

    sample = next(s for s in PrivacyData.load(ROOT / "cases").forget if s.id == SHOWN_SAMPLE)
    return LeakProbe("forget", sample, sample.probes[0])


@pytest.mark.parametrize("show", [False, True])
def test_leak_outcome_masks_the_secret_unless_asked(probe, show: bool) -> None:
    completions = ["nothing here\n", f"{probe.sample.secret}\n"]
    verdicts = [judge_direct(text, probe.sample) for text in completions]
    record = FakeProperty()
    with pytest.raises(pytest.fail.Exception) as failed:
        outcomes.leak(record, "direct_leak", {"model": "m", "variant": "v"}, "none", probe,
                      completions, verdicts,
                      redactor=Redactor([probe.sample], show_secrets=show))
    assert (probe.sample.secret in str(failed.value)) is show
    (name, value), = record.recorded
    shown = json.loads(value)["completion"]  # the leaking completion, not the first
    assert shown == (completions[1] if show else f"{redact(probe.sample.value)}\n")
    assert (probe.sample.secret in value) is show


def test_a_sampled_leak_records_its_first_leaking_sample(probe) -> None:
    """The position leak@n counts by (reports.rows): the first leaking sample, in the order the
    samples were drawn; greedy records carry none."""
    clean = judge_direct("nothing here\n", probe.sample)
    leaking = judge_direct(f"{probe.sample.secret}\n", probe.sample)
    for verdicts, first in (([clean, clean, leaking, leaking], 3), ([clean, clean], None),
                            ([leaking], None)):
        record = FakeProperty()
        with contextlib.suppress(pytest.fail.Exception):
            outcomes.leak(record, "direct_leak", {"model": "m", "variant": "v"}, "none", probe,
                          ["text"] * len(verdicts), verdicts, redactor=Redactor([probe.sample]))
        assert json.loads(record.recorded[0][1]).get("first_leak") == first
