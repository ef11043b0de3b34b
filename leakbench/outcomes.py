"""How a benchmark test turns verdicts into its outcome: a recorded row, then pass or fail.

Each test records one `leakbench` property (leakbench.record_property: a small JSON object of
metric, algorithm, probe id, category and counts, and for a leak probe its kind, context and
copies, the end of its prompt and one of its completions as the run may show them: masked by the
run's `Redactor` unless --show-secrets, cut to PROMPT_CHARS and COMPLETION_CHARS). Under
pytest-xdist the property travels with the test's report to the controller, where the plugin builds
the result table from reports alone. A leak or a failed program is a failed test whose message
names the probe and the verdict category; every message goes through the run's `Redactor`
(leakbench.redaction): the run's secrets masked unless --show-secrets, control characters escaped,
whatever the model or its program wrote.
"""

from __future__ import annotations

import json

import pytest

from leakbench.judges import CATEGORIES, Verdict
from leakbench.record_property import PROPERTY
from leakbench.redaction import Redactor
from leakbench.sandbox import Result

COMPLETION_CHARS = 300  # of the completion a record shows (results.json, results.html): its start
PROMPT_CHARS = 200  # of the prompt: its end, where the secret was asked for


def leak(record_property, metric: str, variant: dict, algorithm: str, probe,
         completions: list[str], verdicts: list[Verdict], *, redactor: Redactor,
         degenerate: int | None = None, invented: int | None = None) -> None:
    """`variant` is what `Prepared.describe` says of the variant the completions came from;
    `verdicts`, one per completion; `degenerate`, how many of the completions the collapse guard
    flagged (leakbench.degeneration), and `invented`, how many hold a value of the probe's kind
    that nobody has (leakbench.invented), each recorded where given."""
    leaked = _record_leak(record_property, metric, variant, algorithm, probe, completions,
                          verdicts, redactor, degenerate, invented)
    if leaked:
        pytest.fail(_leak_message(metric, algorithm, probe, leaked, len(verdicts), redactor),
                    pytrace=False)


def leak_after(record_property, variant: dict, algorithm: str, after: dict, probe,
               completions: list[str], verdicts: dict[str, list[Verdict]], *,
               redactor: Redactor, degenerate: int | None = None) -> None:
    """One probe of `algorithm`'s variant after what `after` records ({"attack": "relearn5"}
    or {"request": 2}, an earlier deletion request), judged by each leak metric's judges
    (`verdicts`: metric -> verdicts, "direct_leak" and "indirect_leak"): one record per metric,
    each with the category semantics of that metric's own test, and one failure naming every
    metric that leaked."""
    failures = []
    for metric, judged in verdicts.items():
        leaked = _record_leak(record_property, metric, {**variant, **after}, algorithm,
                              probe, completions, judged, redactor,
                              degenerate if metric == "direct_leak" else None)
        if leaked:
            failures.append(_leak_message(metric, _subject(algorithm, after), probe, leaked,
                                          len(judged), redactor))
    if failures:
        pytest.fail("; ".join(failures), pytrace=False)


def _subject(algorithm: str, after: dict | None) -> str:
    """"kl", "kl after relearn5", "kl after request 2"."""
    if not after:
        return algorithm
    if "attack" in after:
        return f"{algorithm} after {after['attack']}"
    return f"{algorithm} after request {after['request']}"


def _record_leak(record_property, metric: str, variant: dict, algorithm: str, probe,
                 completions: list[str], verdicts: list[Verdict], redactor: Redactor,
                 degenerate: int | None = None, invented: int | None = None) -> list[Verdict]:
    """Record the probe's outcome; its leaking verdicts, the most specific first. With several
    samples, `first_leak` is the 1-based position of the first leaking one in the order they
    were drawn (leak@n: the probe leaks within n samples when first_leak <= n). The completion
    shown is the most specific leaking one, or the first."""
    order = sorted(range(len(verdicts)),
                   key=lambda i: (not verdicts[i].leaked, CATEGORIES.index(verdicts[i].category)))
    leaked = [verdicts[i] for i in order if verdicts[i].leaked]
    category = leaked[0].category if leaked else "none"  # the most specific: direct first
    first = next((i + 1 for i, v in enumerate(verdicts) if v.leaked), None)
    # Masked whole, then cut: a cut first could leave part of a value unmasked.
    shown = redactor.published(completions[order[0] if leaked else 0])
    if len(shown) > COMPLETION_CHARS:
        shown = shown[:COMPLETION_CHARS] + "…"
    prompt = redactor.published(probe.probe.prompt)
    if len(prompt) > PROMPT_CHARS:
        prompt = "…" + prompt[-PROMPT_CHARS:]
    record_property(PROPERTY, json.dumps({
        **variant, "metric": metric, "algorithm": algorithm, "id": probe.test_id,
        "split": probe.split, "kind": probe.sample.kind, "context": probe.sample.context,
        "copies": probe.copies,
        "prompt": prompt, "completion": shown, "category": category, "positives": len(leaked),
        "samples": len(verdicts), **({"first_leak": first} if first and len(verdicts) > 1
                                     else {}),
        **({"degenerate": degenerate} if degenerate is not None else {}),
        **({"invented": invented} if invented is not None else {})}))
    return leaked


def _leak_message(metric: str, subject: str, probe, leaked: list[Verdict], total: int,
                  redactor: Redactor) -> str:
    secret = redactor.shown(probe.sample.secret)
    return redactor.message(
        f"{metric}: {leaked[0].category} leak of the {probe.sample.kind} {secret} in "
        f"{len(leaked)}/{total} completions ({subject}, probe {probe.test_id}): "
        f"{leaked[0].reason}")


def functional(record_property, variant: dict, algorithm: str, task, results: list[Result], *,
               redactor: Redactor, after: dict | None = None) -> None:
    """`after`: what the variant's weights went through first, if anything (an attack or an
    earlier deletion request, as `leak_after` records it)."""
    passed = [r for r in results if r.passed]
    record_property(PROPERTY, json.dumps({
        **variant, **(after or {}), "metric": task.source, "algorithm": algorithm,
        "id": task.test_id, "category": "passed" if passed else results[0].status,
        "positives": len(passed), "samples": len(results)}))
    if not passed:
        pytest.fail(redactor.message(f"{task.source} {task.test_id} "
                                     f"({_subject(algorithm, after)}): "
                                     f"{results[0].status}: {results[0].reason}"), pytrace=False)
