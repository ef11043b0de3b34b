"""Compare results.json files: ``python -m reports.compare A.json B.json [C.json ...]``.

For each file after the first, one table of every metric of every (model, algorithm) row: its
value in A, in the later file, and the difference (later - A) in percentage points for rates and
ratios, in the metric's own unit otherwise. A row or metric only one file has shows ``—``.
Exit status 0; a file that cannot be read is one line on stderr naming it, and status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tabulate import tabulate

from reports.files import FORMAT
from reports.formatting import MISSING, delta_text, value_text

Rows = dict[tuple[str | None, str], dict[str, float]]


class ResultsFileError(Exception):
    """A file that is not a readable results.json; the message names it."""


def load(path: Path) -> tuple[dict, Rows]:
    """The manifest and the rows' metrics of one results.json."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ResultsFileError(f"{path}: cannot read it as JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ResultsFileError(f"{path}: not a LeakBench results file (format {FORMAT})")
    try:
        rows = {(row["model"], row["algorithm"]): {name: float(value) for name, value
                                                   in row["metrics"].items()}
                for row in data["rows"]}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ResultsFileError(f"{path}: its rows are malformed") from None
    return data.get("manifest", {}), rows


def _cell(name: str, value: float | None) -> str:
    return MISSING if value is None else value_text(name, value)


def comparison(before: Rows, after: Rows) -> list[list[str]]:
    """[model, algorithm, metric, before, after, after - before] per metric of every row."""
    lines = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key, {}), after.get(key, {})
        for name in dict.fromkeys([*old, *new]):
            a, b = old.get(name), new.get(name)
            delta = MISSING if a is None or b is None else delta_text(name, b - a)
            lines.append([key[0] or "?", key[1], name, _cell(name, a), _cell(name, b), delta])
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.compare", description=__doc__
                                     .splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, metavar="results.json",
                        help="the first is the reference; each later one is compared with it")
    args = parser.parse_args(argv)
    if len(args.files) < 2:
        parser.error("give at least two results.json files")
    try:
        loaded = [load(path) for path in args.files]
    except ResultsFileError as err:
        print(f"reports.compare: {err}", file=sys.stderr)
        return 2
    (reference_manifest, reference), reference_path = loaded[0], args.files[0]
    for path, (manifest, rows) in zip(args.files[1:], loaded[1:]):
        print(f"{path} - {reference_path} (runs {manifest.get('run', '?')} vs "
              f"{reference_manifest.get('run', '?')})")
        print(tabulate(comparison(reference, rows), disable_numparse=True,
                       headers=["model", "algorithm", "metric", "A", "B", "B - A"]))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
