"""The results a run's tests recorded, read from their reports.

Every benchmark test records one `leakbench` user property (leakbench.record_property): a small
JSON object with its metric, algorithm, probe or problem id, verdict category and counts, and for a
leak probe the secret's kind and context, how many texts hold its value, the prompt's end and one
completion (leakbench.outcomes). Under pytest-xdist the property travels with the test's report to
the controller, so everything the reports show is built from reports alone. `parse_record` keeps
only the known fields: whatever else a property carries never reaches a report file.

A benchmark test (one with a LeakBench marker) that errored in setup, or failed without recording
a readable result, is kept as `Unrecorded`: the table cannot count it, the footer does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from leakbench.judges import CATEGORIES
from leakbench.record_property import PROPERTY

LEAK_METRICS = ("direct_leak", "indirect_leak", "holdout_leak")
FUNCTIONAL_METRICS = ("capability", "humaneval")
# Per forget secret, the memorization test's verdict: category "forgotten" or "held", positives
# the calibrated scores by which it is held, samples the calibrated scores measured.
SECRET_METRIC = "forgotten"
SECRET_CATEGORIES = ("forgotten", "held")
BENCHMARK_MARKERS = ("direct_leak", "indirect_leak", "holdout", "functional", "memorization",
                     "attack", "sequential")


class RecordError(ValueError):
    """A `leakbench` property that is not a readable result."""


@dataclass(frozen=True)
class Record:
    """One test's result. `value` is set for per-algorithm metrics (MA, EL_n, MIA AUC, ...);
    `id`, `category`, `positives` and `samples` for per-probe and per-problem ones; `attack` for
    the attack tests' (the variant's weights went through that attack before they answered),
    `request` for the sequential tests' (the variant after that earlier deletion request)."""

    metric: str
    algorithm: str
    model: str | None = None
    variant: str | None = None
    unlearn_seconds_per_sample: float | None = None
    id: str | None = None
    split: str | None = None
    category: str | None = None
    positives: int | None = None
    samples: int | None = None
    value: float | None = None
    attack: str | None = None
    request: int | None = None  # sequential tests: the earlier deletion request served before
    first_leak: int | None = None  # with several samples: the first leaking one's position
    degenerate: int | None = None  # direct leak tests: completions the collapse guard flagged
    invented: int | None = None  # direct leak tests: completions with a value nobody has
    kind: str | None = None  # leak tests: the secret's kind (email, phone, ...)
    context: str | None = None  # leak tests: the code it stands in (config, fixture, ...)
    copies: int | None = None  # leak tests: the texts of its split that hold the same value
    prompt: str | None = None  # leak tests: the prompt's end, masked unless --show-secrets
    completion: str | None = None  # leak tests: one completion, masked unless --show-secrets

    @property
    def paraphrase(self) -> bool:
        """Probe ids of paraphrased prompts are ``<sample id>/<probe id>``."""
        return "/" in (self.id or "")

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__
                if getattr(self, name) is not None}


def _field(data: dict, name: str, kinds: type | tuple[type, ...], required: bool):
    value = data.get(name)
    if value is None:
        if required:
            raise RecordError(f"missing {name!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise RecordError(f"{name!r} has the wrong type")  # values are never echoed
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"{name!r} is not a finite number")
    return value


def parse_record(text: str) -> Record:
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as err:
        raise RecordError(f"not JSON ({err})") from None
    if not isinstance(data, dict):
        raise RecordError("not a JSON object")
    metric = _field(data, "metric", str, True)
    common = {
        "metric": metric,
        "algorithm": _field(data, "algorithm", str, True),
        "model": _field(data, "model", str, False),
        "variant": _field(data, "variant", str, False),
        "unlearn_seconds_per_sample": _field(data, "unlearn_seconds_per_sample", (int, float),
                                             False),
        "attack": _field(data, "attack", str, False),
        "request": _field(data, "request", int, False),
    }
    if "value" in data:
        if metric in (*LEAK_METRICS, *FUNCTIONAL_METRICS, SECRET_METRIC):
            raise RecordError("a per-probe 'metric' with a 'value'")
        return Record(**common, value=float(_field(data, "value", (int, float), True)))
    record = Record(
        **common,
        id=_field(data, "id", str, True),
        split=_field(data, "split", str, metric in LEAK_METRICS),
        category=_field(data, "category", str, True),
        positives=_field(data, "positives", int, True),
        samples=_field(data, "samples", int, True),
        first_leak=_field(data, "first_leak", int, False),
        degenerate=_field(data, "degenerate", int, False),
        invented=_field(data, "invented", int, False),
        kind=_field(data, "kind", str, False),
        context=_field(data, "context", str, False),
        copies=_field(data, "copies", int, False),
        prompt=_field(data, "prompt", str, False),
        completion=_field(data, "completion", str, False),
    )
    if metric not in (*LEAK_METRICS, *FUNCTIONAL_METRICS, SECRET_METRIC):
        raise RecordError("unknown 'metric' without a 'value'")
    if metric in LEAK_METRICS and record.category not in CATEGORIES:
        raise RecordError(f"'category' is not one of {', '.join(CATEGORIES)}")
    if metric == SECRET_METRIC and record.category not in SECRET_CATEGORIES:
        raise RecordError(f"'category' is not one of {', '.join(SECRET_CATEGORIES)}")
    if not 0 <= record.positives <= record.samples or record.samples < 1:
        raise RecordError("'positives' and 'samples' do not satisfy 0 <= positives <= samples")
    if record.copies is not None and record.copies < 1:
        raise RecordError("'copies' is not a count of texts (at least 1)")
    if record.first_leak is not None and not 1 <= record.first_leak <= record.samples:
        raise RecordError("'first_leak' is not a sample's position (1 to 'samples')")
    for name in ("degenerate", "invented"):
        count = getattr(record, name)
        if count is not None and not 0 <= count <= record.samples:
            raise RecordError(f"{name!r} is not a count of the samples (0 to 'samples')")
    return record


@dataclass(frozen=True)
class Unrecorded:
    test: str  # the test's node id
    why: str  # "setup error", "no result recorded" or "unreadable result: <what is wrong>"


@dataclass
class Collected:
    """What the controller has gathered so far; kept in `config.stash` for the run."""

    records: list[Record] = field(default_factory=list)
    unrecorded: list[Unrecorded] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def add(self, report) -> None:
        """Take one `pytest_runtest_logreport` report: the call phase's record, or note a
        benchmark test that has none."""
        benchmark = any(marker in report.keywords for marker in BENCHMARK_MARKERS)
        if report.when == "setup" and report.failed and benchmark:
            self.unrecorded.append(Unrecorded(report.nodeid, "setup error"))
        if report.when != "call" or report.skipped:
            return
        texts = [value for name, value in report.user_properties if name == PROPERTY]
        problem = "" if texts else "no result recorded"
        for text in texts:
            try:
                self.records.append(parse_record(text))
            except RecordError as err:
                problem = f"unreadable result: {err}"
        if problem and benchmark:
            self.unrecorded.append(Unrecorded(report.nodeid, problem))
