"""results.html: the run's report as one page that opens offline, from a file, without a server.

The page (reports/page.html, filled here) holds what results.md holds (the run's facts, the gate
lines, the tables with their legends; reports.render) with the charts embedded as PNG data URIs,
and a per-probe view: one row per leak record (leak, holdout and attack tests; an attack test
records a row per metric) with the prompt's end and the completion the record holds, which
leakbench.outcomes masked unless --show-secrets. The view's filters and pages run in the page's
own script on those rows, embedded as JSON.

Everything shown is escaped: text with `html.escape` after control characters are written as
escapes (as in results.md), and the embedded JSON with "<", ">" and "&" as \\u escapes, so that
no completion can end the script element it sits in.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources

from leakbench.redaction import escape_controls
from reports.manifest import facts
from reports.records import LEAK_METRICS, Record
from reports.render import Section, footer_lines, notes, sections
from reports.summary import Summary

PROBE_COLUMNS = ("model", "algorithm", "attack", "metric", "id", "split", "kind", "context",
                 "copies", "style", "verdict", "leaking", "prompt", "completion")
# The view's drop-down filters; id, prompt and completion: a search box.
FILTERS = ("model", "algorithm", "attack", "metric", "split", "kind", "context", "copies",
           "style", "verdict")
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


def _text(value: object) -> str:
    """`value` as HTML text: control characters written as escapes, then markup escaped."""
    return html.escape(escape_controls(str(value)))


def _header(name: str) -> str:
    """A table header, broken where the terminal's breaks it."""
    return "<br>".join(map(_text, name.split("\n")))


def probe_row(record: Record) -> list[str]:
    """A leak record as the per-probe view shows it, in PROBE_COLUMNS' order."""
    return [record.model or "?", record.algorithm, record.attack or "none", record.metric,
            record.id or "", record.split or "", record.kind or "", record.context or "",
            "" if record.copies is None else str(record.copies),
            "paraphrase" if record.paraphrase else "direct", record.category or "",
            f"{record.positives}/{record.samples}", record.prompt or "", record.completion or ""]


def _table(section: Section) -> str:
    head = "".join(f"<th>{_header(name)}</th>" for name in section.headers)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=fail" if str(value).endswith("✗") else ""}>'
                         f"{_text(value)}</td>" for value in row) + "</tr>"
        for row in section.body)
    legend = "".join(f'<p class="legend">{_text(text)}</p>' for text in section.legend)
    return (f"<h2>{_text(section.title)}</h2>\n<table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>\n{legend}")


def _facts(manifest: dict) -> str:
    items = "".join(f"<li>{_text(label)}: <code>{_text(text)}</code></li>" if label == "command"
                    else f"<li>{_text(label)}: {_text(text)}</li>"
                    for label, text in facts(manifest))
    return f"<ul>{items}</ul>"


def _gates(summary: Summary) -> str:
    lines = footer_lines(summary)
    if not lines:
        return ""
    items = "".join(f'<li class="{"fail" if line.startswith("✗") else "pass"}">{_text(line)}</li>'
                    for line in lines)
    return f"<h2>Gates and completeness</h2><ul>{items}</ul>"


def _charts(charts: dict[str, bytes]) -> str:
    images = "".join(f'<img alt="{_text(name)}" src="data:image/png;base64,'
                     f'{base64.b64encode(png).decode("ascii")}">' for name, png in charts.items())
    return f'<h2>Charts</h2><div class="charts">{images}</div>' if images else ""


def _probe_data(summary: Summary) -> str:
    rows = [probe_row(record) for record in summary.records if record.metric in LEAK_METRICS]
    data = {"columns": PROBE_COLUMNS, "filters": FILTERS, "rows": rows}
    return json.dumps(data, ensure_ascii=False).translate(_JSON_ESCAPES)


def page(summary: Summary, manifest: dict, charts: dict[str, bytes]) -> str:
    """results.html's text; `charts`: reports.chart.charts' PNGs by file name."""
    tables = "\n".join([*map(_table, sections(summary)),
                        *(f'<p class="legend">{_text(note)}</p>' for note in notes(summary))])
    masking = ("unmasked (--show-secrets)." if manifest["show_secrets"]
               else "with every value of the run's data masked (a…z).")
    filled = {
        "<!--FACTS-->": _facts(manifest),
        "<!--GATES-->": _gates(summary),
        "<!--CHARTS-->": _charts(charts),
        "<!--TABLES-->": tables,
        "<!--MASKING-->": masking,
        "<!--PROBE-DATA-->": _probe_data(summary),
    }
    text = resources.files("reports").joinpath("page.html").read_text(encoding="utf-8")
    for marker, content in filled.items():
        text = text.replace(marker, content, 1)
    return text
