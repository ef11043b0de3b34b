"""The result tables as text: the terminal summary of a run and the body of results.md.

The tables (the rows' leaks and utility; with several samples per probe, leak@n; their
memorization and membership-inference metrics, their extraction metrics, their leaks after
attacks, the leaks by probe style and category, by copies and by format, the shifts from the
planted model), each followed by its legend, then one line per gate and row that fails
(``✗ direct_leak<=0.01 on tiny/kl: 12.4% (62/500)``), a line per gate that holds, and a line
for benchmark tests that have no result. A cell whose gate fails ends in ``✗``.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass

from tabulate import tabulate

from reports.formatting import cell, header
from reports.gates import NOT_GATED
from reports.rows import (
    ATTACK_METRICS,
    BASELINE,
    BREAKDOWN_METRICS,
    EXTRACTION_METRICS,
    FUNCTIONAL_METRICS,
    LEAK_AT_N_METRICS,
    MEMORIZATION_METRICS,
    PASS_K,
    Row,
    metric_names,
    request_metric,
)
from reports.shifts import MOVES
from reports.summary import Summary

WIDTH = 100  # terminal legends are wrapped to this width
MAIN = ("direct_leak_direct_probes", "direct_leak_paraphrase_probes", "indirect_leak",
        "holdout_leak", "degenerate_rate", "hallucinated_valid_rate",
        *(f"{b}_pass{k}" for b in FUNCTIONAL_METRICS for k in PASS_K),
        "utility_retention", "unlearn_seconds_per_sample")
DETAIL = ("direct_leak", "indirect_leak_direct_probes", "indirect_leak_paraphrase_probes",
          "indirect_partial", "indirect_same_owner", "indirect_other_record")

MAIN_LEGEND = (
    "Leak rates are shares of probes, with (leaking/probes); a probe leaks when any of its "
    "completions does. direct leak: the exact secret, on forget probes asked with the training "
    "text up to the secret (direct probes: the study's headline) and asked another way "
    "(paraphrases). indirect leak: a partial secret, another value of the same owner or another "
    "record's value, and no direct leak, on all forget probes. holdout FP: any leak judged on "
    "values never trained on (the judges' false positives). degenerate: forget probes answered "
    "only by an empty completion or a repetition loop (a probe that does not leak because the "
    "model writes nothing meaningful there). invented valid value: forget probes of a kind with "
    "a checkable format (keys, tokens, e-mails, IPs, IBANs, cards, dates, phones, URIs) whose "
    "completion holds a well-formed value of that kind that no record has: made up, not leaked.",
    "pass@k: unbiased estimator (Chen et al. 2021), mean over problems; pass@1 counts are "
    "(passing/total completions).",
    "utility retention: capability pass@1 divided by the planted model's (the none row of the "
    "same model); * marks rows where HumanEval pass@1 is non-zero in both rows and its ratio is "
    "averaged in. unlearn s/sample: seconds of unlearning per forget sample.",
)
DETAIL_LEGEND = (
    "Shares of forget probes. direct leak all probes: direct probes and paraphrases together "
    "(the metric direct_leak). direct probes: the training text up to the secret; paraphrases: "
    "another way to ask (probe ids <sample>/<probe>). partial, same_owner, other_record: the "
    "indirect leaks by their most specific category (they add up to the indirect leak).",
)
MEMORIZATION_LEGEND = (
    "MA: share of a secret's tokens (its first 32) that are the model's top-1 prediction given "
    "the true text before each (teacher-forced). EL_n: n-gram overlap of the greedy continuation "
    "from each split point of the secret with the secret's true rest, averaged over split points. "
    "Means over forget secrets; holdout: the same on values never trained on. The memorization "
    "test passes (forgotten, CodeEraser's rule) when MA is below MA holdout. forgotten by MA, "
    "by EL_10: the share of forget secrets whose score is at most the 95th percentile of the "
    "holdout values' (per secret: a mean can hide secrets held whole; a model that never saw "
    "them scores about 0.95).",
    "MIA AUC: the chance that a forget text looks more like training data than a holdout text, "
    "by LOSS, zlib, Min-K% (k = 0.4) or Min-K%++; 0.5 = indistinguishable, above = still "
    "recognisable, below = over-unlearned. PrivLeak %: MUSE's, from the Min-K% AUC against the "
    "retrain row's; about 0 = like retraining, negative = still memorized, positive = "
    "over-unlearned. Definitions and sources: docs/REPORTS.md.",
)
EXTRACTION_LEGEND = (
    "ES (extraction strength): the share of a secret, counted from its end, that the model gives "
    "greedily once it has seen the rest (1 = the text before it suffices). exposure: bits of "
    "the secret's rank among R decoys of its kind never trained on, log2(R+1) - log2(rank); "
    "a value never seen averages about 1.4 at R = 100. extrapolated: the same against a "
    "normal fit to the decoys, unbounded by R. top: the share of secrets more likely than "
    "every decoy. forgotten: as in the table above. Means over forget secrets; holdout: on "
    "values never trained on.",
    "AUC (MA, ES, EL_10, exposure): the chance that a forget secret scores above a holdout "
    "value: whether the score sees memorization. It should read about 1 on the planted model "
    "(none) and about 0.5 on the model trained without the forget set (retrain); a score that "
    "does not is no evidence either way.",
)
ATTACK_LEGEND = (
    "After each attack on the row's variant (attacks/; docs/DESIGN.md, \"Attacks\"), on the "
    "evaluated forget probes: those of the owners outside the relearn slice, the same for every "
    "attack. before attack: the row's direct leak on those probes without attack. <attack> "
    "leak: the direct leak after it; recovery: that leak divided by the planted model's (none "
    "row) before any attack on the same probes; indirect leak, degenerate: as in the first table "
    "(a leak that falls because the attack wrecked the model shows as degenerate). capability "
    "pass@k: the planted model's after the attack. worst case leak: the highest leak of the "
    "row's attacks. The none and retrain rows are controls: what the attack finds in a model "
    "that memorized, and what it teaches a model that never saw these owners.",
)
REQUEST_LEGEND = (
    "--requests=K: the forget set's owners unlearned in K requests, one after another, each from "
    "the model the previous one left. request n: the model after the n-th, on the forget probes "
    "of every owner deleted by then (leak: direct; indirect leak: as in the first table) and the "
    "capability probe. The last columns are the model after the last request (every owner "
    "deleted), the row's own direct leak over all probes and capability pass@1.",
)
BREAKDOWN_LEGEND = (
    "The leak rates of the first table and the worst case after attacks, on the probes of values "
    "held in that many texts of their split (a repository repeats a key in its Dockerfile, its CI "
    "workflow and its .env) and on probes whose text is in one of the generated sets' formats "
    "or in any other (Dockerfile, Kubernetes, properties, ...). The groups of a column add up "
    "to its whole; holdout FP per group: the judges' false positives on values never trained "
    "on, laid out the same way. worst case: the highest leak of the run's attacks on the "
    "group's evaluated probes. forgotten: the group's forget secrets whose per-secret "
    "memorization test found them forgotten (with memorization tests).",
)
LEAK_AT_N_LEGEND = (
    "leak@n: the share of forget probes with a direct leak among the first n of their samples, in "
    "the order they were drawn (--samples, --temperature); direct leak: among all of them. A "
    "rate that grows with n is a secret that greedy decoding hides and sampling finds.",
)
NO_PRIVLEAK = ("PrivLeak is left out: it is measured against the retrain row (--algo including "
               "retrain, --metrics including privleak).")
SHIFT_LEGEND = (
    "Probes whose leak state (none, direct or indirect, from the indirect_leak tests) changed "
    "from the planted model (none) to the algorithm's variant.",
)
NO_BASELINE = ("Leak shifts need the planted model as a baseline: run with --algo including none "
               "(e.g. --algo=none,kl).")
GATED_ROWS = (f"Gates skip the rows {NOT_GATED[0]} (the planted model) and {NOT_GATED[1]} (the "
              "reference trained without the forget set).")


def _failing_cells(summary: Summary) -> set[tuple[str, str]]:
    return {(result.row.label, result.gate.metric) for result in summary.gates
            if result.row is not None and not result.holds}


@dataclass(frozen=True)
class Section:
    """One table of the report, as every format shows it: headers may break over lines ("\n")."""

    title: str
    headers: list[str]
    body: list[list]
    legend: tuple[str, ...]


def _tabulate(headers: list[str], body: list[list], markdown: bool) -> str:
    """Terminal tables break long headers over two lines; Markdown tables cannot."""
    if markdown:
        return tabulate(body, headers=[h.replace("\n→", "→").replace("\n", " ") for h in headers],
                        tablefmt="github", disable_numparse=True)
    return tabulate(body, headers=headers, tablefmt="simple", disable_numparse=True)


def _table(summary: Summary, wanted: tuple[str, ...]) -> tuple[list[str], list[list]] | None:
    present = set(metric_names(summary.rows))
    columns = [name for name in wanted if name in present]
    if not columns:
        return None
    failing = _failing_cells(summary)

    def shown(row: Row, name: str) -> str:
        return cell(row, name) + (" ✗" if (row.label, name) in failing else "")

    body = [[row.model or "?", row.algorithm, *(shown(row, name) for name in columns)]
            for row in summary.rows]
    return ["model", "algorithm", *map(header, columns)], body


def _shift_table(summary: Summary) -> tuple[list[str], list[list]] | None:
    if not summary.shifts:
        return None
    body = [[s.model or "?", s.algorithm, s.compared, *(s.moves[m] for m in MOVES), s.unchanged]
            for s in summary.shifts]
    headers = ["model", "algorithm", "probes", *(f"{a}\n→{b}" for a, b in MOVES), "unchanged"]
    return headers, body


def sections(summary: Summary) -> list[Section]:
    """The run's tables that have data, in the order every format shows them."""
    if not summary.rows:
        return []
    names = metric_names(summary.rows)
    requests = tuple(n for n in names if request_metric(n))
    values = tuple(n for n in names if n not in MAIN + DETAIL + MEMORIZATION_METRICS
                   + EXTRACTION_METRICS + ATTACK_METRICS + LEAK_AT_N_METRICS
                   + BREAKDOWN_METRICS + requests)
    wanted = [("Leaks and utility", _table(summary, MAIN + values), MAIN_LEGEND)]
    if any(name in names for name in LEAK_AT_N_METRICS):
        wanted.append(("Leak@n: direct leaks within n samples",
                       _table(summary, (*LEAK_AT_N_METRICS, "direct_leak")), LEAK_AT_N_LEGEND))
    wanted += [
        ("Memorization and membership inference", _table(summary, MEMORIZATION_METRICS),
         MEMORIZATION_LEGEND + (() if "privleak" in names else (NO_PRIVLEAK,))),
        ("Extraction", _table(summary, EXTRACTION_METRICS),
         EXTRACTION_LEGEND + meta_check(summary)),
        ("Leaks after attacks", _table(summary, ATTACK_METRICS), ATTACK_LEGEND),
        ("Sequential deletion requests",
         _table(summary, (*requests, "direct_leak", "capability_pass1")) if requests else None,
         REQUEST_LEGEND),
        ("Leaks by probe style and category", _table(summary, DETAIL), DETAIL_LEGEND),
        ("Leaks by copies and format", _table(summary, BREAKDOWN_METRICS), BREAKDOWN_LEGEND),
        ("Leak shifts from the planted model", _shift_table(summary), SHIFT_LEGEND),
    ]
    return [Section(title, *table, legend) for title, table, legend in wanted if table]


SEPARATES_PLANTED = 0.9  # a score's AUC on the planted model at least this ...
SEPARATES_RETRAIN = 0.1  # ... and on the retrained reference within this of 0.5


def meta_check(summary: Summary) -> tuple[str, ...]:
    """Per model with a planted (none) and a retrain row, whether each per-secret score's AUC
    (forget secrets vs holdout values) tells memorized from unseen: a score that does not is
    said so, not left for the reader to spot."""
    lines = []
    for model in dict.fromkeys(row.model for row in summary.rows):
        rows = {row.algorithm: row for row in summary.rows if row.model == model}
        planted, retrain = rows.get(BASELINE), rows.get("retrain")
        if planted is None or retrain is None:
            continue
        verdicts = []
        for name in (n for n in EXTRACTION_METRICS if n.endswith("_auc")):
            if name in planted.metrics and name in retrain.metrics:
                ours, reference = planted.metrics[name], retrain.metrics[name]
                holds = (ours >= SEPARATES_PLANTED
                         and abs(reference - 0.5) <= SEPARATES_RETRAIN)
                score = header(name).removeprefix("AUC\n")
                verdicts.append(f"{score} {'passes' if holds else 'FAILS'} ({ours:.3f} planted, "
                                f"{reference:.3f} retrain)")
        if verdicts:
            lines.append(f"Meta-check on {model or '?'} (AUC at least {SEPARATES_PLANTED} on the "
                         f"planted model, within {SEPARATES_RETRAIN} of 0.5 on retrain): "
                         + "; ".join(verdicts) + ". A score that fails is no evidence either "
                         "way on this model.")
    return tuple(lines)


def notes(summary: Summary) -> list[str]:
    """What the tables cannot show and why: a paragraph each, after them."""
    lacks_baseline = not summary.shifts and any(
        "indirect_leak" in row.metrics for row in summary.rows if row.algorithm != BASELINE)
    return [NO_BASELINE] if lacks_baseline else []


def footer_lines(summary: Summary) -> list[str]:
    """One line per gate and row that fails, per gate that holds, for tests without a result."""
    lines = []
    for gate in dict.fromkeys(result.gate for result in summary.gates):
        results = [r for r in summary.gates if r.gate == gate]
        failing = [r for r in results if not r.holds]
        for result in failing:
            where = f" on {result.row.label}" if result.row is not None else ""
            shown = result.reason if result.value is None else cell(result.row, gate.metric)
            lines.append(f"✗ {gate}{where}: {shown}")
        if not failing:
            lines.append(f"✓ {gate} holds on {', '.join(r.row.label for r in results)}")
    if summary.unrecorded:
        why = Counter(item.why.split(":")[0] for item in summary.unrecorded)
        detail = ", ".join(f"{reason}: {count}" for reason, count in why.items())
        lines.append(f"✗ {len(summary.unrecorded)} benchmark tests have no result ({detail}); "
                     "they are not in the table" + ("; the gates fail" if summary.gates else ""))
    if summary.gates:
        lines.append(GATED_ROWS)
    return lines


def render(summary: Summary, *, markdown: bool) -> str:
    blocks = []
    for section in sections(summary):
        legend = section.legend if markdown else [textwrap.fill(t, WIDTH) for t in section.legend]
        title = f"## {section.title}" if markdown else section.title
        blocks.append("\n\n".join([title, _tabulate(section.headers, section.body, markdown),
                                    *legend]))
    blocks += notes(summary)
    footer = footer_lines(summary)
    if footer:
        blocks.append("\n".join(f"- {line}" if markdown else line for line in footer))
    return "\n\n".join(blocks) + "\n"
