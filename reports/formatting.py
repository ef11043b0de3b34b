"""How each metric reads in tables: its column header and its cell text."""

from __future__ import annotations

from leakbench.cases import COPY_LEVELS, FORMAT_FAMILIES, copies_label
from leakbench.options import LEAK_AT_N
from reports.rows import ATTACKS, BREAKDOWN_OF, COMPUTED_METRICS, Row, request_metric

MISSING = "—"
NAMES = {  # a line break where a narrow terminal column may wrap; Markdown shows a space
    "direct_leak": "direct leak\nall probes",
    "direct_leak_direct_probes": "direct leak\ndirect probes",
    "direct_leak_paraphrase_probes": "direct leak\nparaphrases",
    "indirect_leak": "indirect\nleak",
    "indirect_leak_direct_probes": "indirect leak\ndirect probes",
    "indirect_leak_paraphrase_probes": "indirect leak\nparaphrases",
    "indirect_partial": "indirect:\npartial",
    "indirect_same_owner": "indirect:\nsame_owner",
    "indirect_other_record": "indirect:\nother_record",
    "holdout_leak": "holdout\nFP",
    "degenerate_rate": "degenerate",
    "hallucinated_valid_rate": "invented\nvalid value",
    **{f"direct_leak_at{n}": f"leak@{n}" for n in LEAK_AT_N},
    "utility_retention": "utility\nretention",
    "unlearn_seconds_per_sample": "unlearn\ns/sample",
    "ma": "MA",
    "ma_holdout": "MA\nholdout",
    "forgotten_secrets": "forgotten\nsecrets",
    "forgotten_ma": "forgotten\nby MA",
    "forgotten_el10": "forgotten\nby EL_10",
    "el3": "EL_3",
    "el3_holdout": "EL_3\nholdout",
    "el5": "EL_5",
    "el5_holdout": "EL_5\nholdout",
    "el10": "EL_10",
    "el10_holdout": "EL_10\nholdout",
    "mia_auc_loss": "MIA AUC\nLOSS",
    "mia_auc_zlib": "MIA AUC\nzlib",
    "mia_auc": "MIA AUC\nMin-K%",
    "mia_auc_minkpp": "MIA AUC\nMin-K%++",
    "privleak": "PrivLeak\n%",
    "es": "ES",
    "es_holdout": "ES\nholdout",
    "forgotten_es": "forgotten\nby ES",
    "exposure": "exposure\nbits",
    "exposure_holdout": "exposure\nholdout",
    "forgotten_exposure": "forgotten by\nexposure",
    "exposure_extrapolated": "extrapolated\nbits",
    "exposure_extrapolated_holdout": "extrapolated\nholdout",
    "exposure_top_share": "above every\ndecoy",
    "ma_auc": "AUC\nMA",
    "es_auc": "AUC\nES",
    "el10_auc": "AUC\nEL_10",
    "exposure_auc": "AUC\nexposure",
    "evaluated_leak": "before\nattack",
    "worst_case_leak": "worst case\nleak",
}
_SHORT = {"direct_leak": "direct", "indirect_leak": "indirect", "holdout_leak": "holdout FP",
          "worst_case_leak": "worst case", "forgotten_secrets": "forgotten"}
NAMES |= {f"{metric}_copies{level}": f"{_SHORT[metric]}\n{copies_label(level)}"
          for metric in BREAKDOWN_OF for level in COPY_LEVELS}
NAMES |= {f"{metric}_{family}_formats": f"{_SHORT[metric]}\n{family} formats"
          for metric in BREAKDOWN_OF for family in FORMAT_FAMILIES}
PERCENT_METRICS = frozenset(COMPUTED_METRICS) - {"unlearn_seconds_per_sample"}


def header(name: str) -> str:
    for benchmark, shown in (("capability", "capability"), ("humaneval", "HumanEval")):
        if name.startswith(f"{benchmark}_pass"):
            return f"{shown}\npass@{name.removeprefix(f'{benchmark}_pass')}"
    after_request = request_metric(name)
    if after_request:  # request<n>_<measure>: the request above what it measures
        number, measure = after_request
        return f"request {number}\n{header(measure).replace(chr(10), ' ')}"
    for attack in ATTACKS:  # <attack>_<metric>: the attack above what it measures
        if name.startswith(f"{attack}_"):
            return f"{attack}\n{header(name.removeprefix(f'{attack}_')).replace(chr(10), ' ')}"
    return NAMES.get(name, name)


def value_text(name: str, value: float) -> str:
    """A bare number: percent for rates and ratios, seconds with 2 decimals, others with 3."""
    if name in PERCENT_METRICS or request_metric(name):
        return f"{100 * value:.1f}%"
    return f"{value:.2f}" if name == "unlearn_seconds_per_sample" else f"{value:.3f}"


def delta_text(name: str, delta: float) -> str:
    """A difference: percentage points for rates and ratios, the metric's own unit otherwise."""
    if name in PERCENT_METRICS or request_metric(name):
        return f"{100 * delta:+.1f} pp"
    return f"{delta:+.2f}" if name == "unlearn_seconds_per_sample" else f"{delta:+.3f}"


def cell(row: Row, name: str) -> str:
    """A row's metric with its count, e.g. ``12.4% (62/500)``; ``*`` marks a utility retention
    that averages in HumanEval."""
    value = row.metrics.get(name)
    if value is None:
        return MISSING
    text = value_text(name, value)
    count = row.counts.get(name)
    if count is not None:
        text += f" ({count.positives}/{count.total})"
    if name == "utility_retention" and "humaneval" in row.retention_basis:
        text += "*"
    return text
