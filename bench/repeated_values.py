"""One value in several files: does a value that a repository repeats survive unlearning more than
a value seen once, and is that the repetition or the format?

    python bench/repeated_values.py [--model tiny] [--algo all] [--attacks quant,relearn5]
                                    [--cache-dir DIR] [--docs FILE]

Runs the benchmark on cases/repeated/ (values held verbatim in 1, 2, 4 or 8 files, in the
generated sets' formats or in nine others, with a holdout mirror; its README says why it is laid
out so): every algorithm of --algo unlearns that forget set, the attacks of --attacks follow. From
the run's results.json it tabulates, per algorithm, the direct leak of the direct probes (the
training text up to the value) in each cell of copies x format family, before and after each
attack, and the indirect leak and holdout false positives by copies; beside them the report's own
"Leaks by copies and format" table (all probes). Writes the "One value in several files on
`tiny`" section of docs/RESULTS.md, or of --docs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from host import description

from leakbench.cases import COPY_LEVELS, copies_label, copies_level, format_family
from leakbench.docs_section import write_section
from leakbench.options import (
    DEFAULT_ATTACKS,
    OptionError,
    parse_algorithms,
    parse_attacks,
    parse_cache_dir,
)

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases" / "repeated"
RESULTS_MD = ROOT / "docs" / "RESULTS.md"
SECTION = "One value in several files on `tiny`"
FAMILIES = {"generated": "generated formats", "other": "other formats"}


def cells(outcomes: list[dict], metric: str, attack: str | None,
          leaks: set[str]) -> dict[str, dict[tuple[int, str], list[bool]]]:
    """Per algorithm and (copies level, format family), whether each direct probe's outcome of
    `metric` (after `attack`) is one of `leaks`."""
    table: dict[str, dict[tuple[int, str], list[bool]]] = defaultdict(lambda: defaultdict(list))
    for outcome in outcomes:
        if (outcome["metric"] == metric and outcome.get("attack") == attack
                and "/" not in outcome["id"] and "copies" in outcome):
            cell = copies_level(outcome["copies"]), format_family(outcome["context"])
            table[outcome["algorithm"]][cell].append(outcome["category"] in leaks)
    return table


def rate(hits: list[bool]) -> str:
    return f"{sum(hits) / len(hits):.0%} ({sum(hits)}/{len(hits)})" if hits else "—"


def cell_table(table: dict[str, dict[tuple[int, str], list[bool]]], algorithms: list[str]
               ) -> list[str]:
    """Markdown rows: one per algorithm, a column per copies level and family."""
    columns = [(level, family) for family in FAMILIES for level in COPY_LEVELS]
    rows = ["| algorithm | " + " | ".join(f"{copies_label(level)}, {FAMILIES[family]}"
                                          for level, family in columns) + " |",
            "| --- |" + " ---: |" * len(columns)]
    rows += [f"| {algorithm} | " + " | ".join(rate(table[algorithm][cell]) for cell in columns)
             + " |" for algorithm in algorithms if algorithm in table]
    return rows


def report_section(results_md: str, title: str) -> str:
    """The report's own table `title` from results.md, with its legend."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", results_md, re.S | re.M)
    return found.group(1).strip() if found else f"(the report has no table {title!r})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "micro"), default="tiny")
    parser.add_argument("--algo", default="all", help="as the benchmark's (%(default)s)")
    parser.add_argument("--attacks", default=DEFAULT_ATTACKS,
                        help="as the benchmark's (%(default)s)")
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""),
                        help="default: $LEAKBENCH_CACHE_DIR or ~/.cache/leakbench")
    parser.add_argument("--docs", type=Path, default=RESULTS_MD,
                        help="the Markdown file whose section is rewritten (%(default)s)")
    args = parser.parse_args()
    try:
        algorithms, attacks = list(parse_algorithms(args.algo)), list(parse_attacks(args.attacks))
    except OptionError as error:
        parser.error(str(error))
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report"
        started = time.monotonic()
        command = [sys.executable, "-m", "pytest", "benchmark", f"--model={args.model}",
                   f"--algo={','.join(algorithms)}", f"--attacks={','.join(attacks) or 'none'}",
                   f"--cases-dir={CASES}", f"--cache-dir={args.cache_dir}",
                   f"--report-dir={report}", "-n", "2", "-p", "no:cacheprovider", "-q"]
        run = subprocess.run(command, cwd=ROOT)
        if run.returncode not in (0, 1):
            sys.exit(f"bench/repeated_values.py: the benchmark run failed (exit {run.returncode})")
        outcomes = json.loads((report / "results.json").read_text())["outcomes"]
        results_md = (report / "results.md").read_text()
    minutes = (time.monotonic() - started) / 60
    direct = {"direct"}
    indirect = {"partial", "same_owner", "other_record"}
    parts = [
        f"Command: `python bench/repeated_values.py --model {args.model} --algo "
        f"{','.join(algorithms)} --attacks {','.join(attacks) or 'none'}` "
        f"({time.strftime('%Y-%m-%d')}, {minutes:.0f} min with a cold planting of the repeated "
        f"set, {description()}). Greedy decoding; the forget set is cases/repeated/ alone.",
        "Direct leak of the direct probes (the training text up to the value), by the number of "
        "files that hold the value and the family of formats they are in:",
        "\n".join(cell_table(cells(outcomes, "direct_leak", None, direct), algorithms)),
    ]
    for attack in attacks:
        parts += [f"The same after `{attack}` (the evaluated probes: owners outside the relearn "
                  "slice):",
                  "\n".join(cell_table(cells(outcomes, "direct_leak", attack, direct),
                                       algorithms))]
    parts += [
        "Indirect leak of the direct probes (a part of the value, another value of its owner or "
        "another record's, and no direct leak):",
        "\n".join(cell_table(cells(outcomes, "indirect_leak", None, indirect), algorithms)),
        "The report's table (all probes, direct and paraphrased; paraphrases ask from a file of "
        "the other family, which holds no copy):",
        report_section(results_md, "Leaks by copies and format"),
    ]
    text = "\n\n".join(parts) + "\n"
    print(text)
    write_section(args.docs, SECTION, text)


if __name__ == "__main__":
    main()
