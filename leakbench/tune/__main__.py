"""``python -m leakbench.tune``: choose every tuned algorithm's settings with the same budget of
trials, on the tuning split only (leakbench.tune).

    python -m leakbench.tune [--model tiny] [--algo all|NAME,...] [--budget 8] [--humaneval]
                             [--cases-dir DIR] [--cache-dir DIR] [--out DIR] [--write | --check]

Writes, into --out (default reports/out/tuning): tuning.md (every trial's settings and scores on
both parts of the split, the chosen ones in bold), tuning.json (the same, with the run's budget,
split sizes and CPU time) and pareto.png (leakbench's reports.pareto). --write puts the chosen
settings into algorithms/hparams.toml (leakbench.tune.hparams_file), each with the trial it came
from; --check instead exits with status 1 when they differ from the file's, naming each
difference. Exit status 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tabulate import tabulate

import algorithms
from algorithms.hparams import load_hparams
from leakbench.cases import CaseFileError
from leakbench.models import ModelUnavailable, family, lookup
from leakbench.options import OptionError, parse_cache_dir
from leakbench.plant import plant_config
from leakbench.probes import PrivacyData
from leakbench.tune import hparams_file
from leakbench.tune.measure import Measured, run_trials
from leakbench.tune.trials import BUDGET, RETENTION_BAR, Choice, choose, trials
from reports.pareto import Point, pareto_png

PROG = "python -m leakbench.tune"
ROOT = Path(__file__).resolve().parents[2]


def _tuned_algorithms(value: str) -> list[str]:
    tuned = [name for name, spec in algorithms.registry().items() if spec.tuned]
    if value == "all":
        return tuned
    chosen = [name.strip() for name in value.split(",") if name.strip()]
    wrong = [name for name in chosen if name not in tuned]
    if wrong or not chosen:
        raise argparse.ArgumentTypeError(f"{wrong[0] if wrong else value!r} is not a tuned "
                                         f"algorithm; valid: all, {', '.join(tuned)}")
    return list(dict.fromkeys(chosen))


def _budget(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return int(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="a model as --model of the benchmark")
    parser.add_argument("--algo", type=_tuned_algorithms, default="all",
                        help="'all' (every tuned algorithm) or a comma-separated list")
    parser.add_argument("--budget", type=_budget, default=BUDGET,
                        help=f"trials per algorithm (default {BUDGET})")
    parser.add_argument("--humaneval", action="store_true",
                        help="measure utility on HumanEval's problems too, not only the "
                             "capability probe")
    parser.add_argument("--cases-dir", type=Path, default=ROOT / "cases")
    parser.add_argument("--cache-dir", default="", help="as the benchmark's --cache-dir")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "out" / "tuning")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true",
                        help="write the chosen settings into algorithms/hparams.toml")
    action.add_argument("--check", action="store_true",
                        help="exit 1 when the chosen settings differ from algorithms/hparams.toml")
    args = parser.parse_args(argv)
    if isinstance(args.algo, str):  # argparse does not convert a default
        args.algo = _tuned_algorithms(args.algo)
    try:
        args.cache_dir = parse_cache_dir(args.cache_dir)
    except OptionError as err:
        parser.error(str(err))
    return args


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def _constants(settings: dict) -> str:
    shown = {k: v for k, v in settings.items() if k not in ("lr", "stop_forget_nll")}
    return ", ".join(f"{k} {v:g}" for k, v in shown.items()) or "-"


def trial_rows(planted: Measured, measured: list[Measured], chosen: dict[str, Choice]
               ) -> list[dict]:
    """One record per trial: its settings, steps and both parts' scores, and whether chosen."""
    rows = []
    for m in measured:
        trial = m.trial
        row = {"algorithm": trial.algorithm, "trial": trial.index, "settings": trial.settings,
               "steps": m.steps, "chosen": chosen[trial.algorithm].trial == trial}
        for split, score in m.scores.items():
            row[split] = {**asdict(score), "leak": score.leak,
                          "retention": score.retention(planted.scores[split])}
        rows.append(row)
    return rows


def table_markdown(planted: Measured, rows: list[dict]) -> str:
    header = ["algorithm", "trial", "lr", "stop at forget NLL", "constants", "steps",
              "tuning: direct leak", "tuning: capability kept", "reported: direct leak",
              "reported: capability kept"]
    body = [["none (planted)", "-", "-", "-", "-", "0"]
            + sum(([f"{_percent(s.leak)} ({s.leaked}/{s.probes})",
                    f"{_percent(s.capability)} pass@1 ({s.passed}/{s.tasks})"]
                   for s in planted.scores.values()), [])]
    for row in rows:
        settings, bold = row["settings"], (lambda text: f"**{text}**") if row["chosen"] else str
        stop = settings["stop_forget_nll"]
        cells = [row["algorithm"], str(row["trial"]), f"{settings['lr']:g}",
                 "-" if stop is None else f"{stop:g}", _constants(settings), str(row["steps"])]
        for split in ("tuning", "reported"):
            s = row[split]
            cells += [f"{_percent(s['leak'])} ({s['leaked']}/{s['probes']})",
                      f"{_percent(s['retention'])} ({s['passed']}/{s['tasks']})"]
        body.append([bold(cell) for cell in cells])
    return tabulate(body, headers=header, tablefmt="github", disable_numparse=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        spec = lookup(args.model)
        model_family = family(spec)
        data = PrivacyData.load(args.cases_dir, plant_config(model_family).forget_samples)
        planned = [trial for algorithm in args.algo
                   for trial in trials(algorithm, load_hparams(model_family, algorithm,
                                                               own_table=False), args.budget)]
    except (CaseFileError, ModelUnavailable, KeyError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    started = time.monotonic()
    planted, measured = run_trials(spec, planned, data, args.cache_dir,
                                   sources=("capability", "humaneval") if args.humaneval
                                   else ("capability",))
    chosen = {algorithm: choose([(m.trial, m.scores["tuning"], m.steps) for m in measured
                                 if m.trial.algorithm == algorithm], planted.scores["tuning"])
              for algorithm in args.algo}
    rows = trial_rows(planted, measured, chosen)
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    summary = {
        "model": args.model, "family": model_family, "budget": args.budget,
        "retention_bar": RETENTION_BAR, "wall_s": round(time.monotonic() - started, 1),
        "cpu_s": round(sum(u.ru_utime + u.ru_stime for u in usage), 1),
        "split": {"tuning_owners": len(data.tuning_owners),
                  "reported_owners": len({s.owner for s in data.reported})},
        "planted": {split: asdict(score) for split, score in planted.scores.items()},
        "chosen": {a: {"trial": c.trial.index, "meets_bar": c.meets_bar, **c.trial.settings}
                   for a, c in chosen.items()},
        "trials": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tuning.json").write_text(json.dumps(summary, indent=1))
    markdown = table_markdown(planted, rows)
    (args.out / "tuning.md").write_text(markdown + "\n")
    points = [Point(row["algorithm"], row["reported"]["retention"], row["reported"]["leak"],
                    row["chosen"]) for row in rows]
    (args.out / "pareto.png").write_bytes(pareto_png(points, f"{args.model}: {len(args.algo)} "
                                                     f"algorithms x {args.budget} trials"))
    print(markdown)
    for algorithm, choice in chosen.items():
        if not choice.meets_bar:
            print(f"{algorithm}: no trial kept {_percent(RETENTION_BAR)} of the planted model's "
                  f"tuning capability; chose trial {choice.trial.index} by the fallback "
                  "(leakbench.tune.trials)")
    print(f"wrote {args.out}/tuning.md, tuning.json, pareto.png "
          f"({summary['wall_s']:.0f} s wall, {summary['cpu_s'] / 60:.1f} CPU min)")
    return _write_or_check(args, model_family, chosen,
                           {(row["algorithm"], row["trial"]): row for row in rows})


def _provenance(row: dict, budget: int) -> str:
    tuning = row["tuning"]
    return (f"{row['trial']} of {budget}: tuning split {_percent(tuning['leak'])} direct leaks "
            f"({tuning['leaked']}/{tuning['probes']}), {_percent(tuning['retention'])} of the "
            f"planted capability kept, {row['steps']} steps")


def _write_or_check(args, model_family: str, chosen: dict[str, Choice], rows: dict) -> int:
    if args.write:
        hparams_file.write(model_family, {
            a: hparams_file.table(model_family, a, c.trial.settings,
                                  _provenance(rows[(a, c.trial.index)], args.budget))
            for a, c in chosen.items()})
        print(f"wrote the chosen settings of {', '.join(chosen)} into {hparams_file.HPARAMS_PATH}")
        return 0
    if args.check:
        differ = []
        for algorithm, choice in chosen.items():
            wanted = {k: v for k, v in choice.trial.settings.items() if v is not None}
            if hparams_file.written(model_family, algorithm) != wanted:
                differ.append(f"{algorithm}: chose {wanted}, hparams.toml has "
                              f"{hparams_file.written(model_family, algorithm)}")
        for line in differ:
            print(line, file=sys.stderr)
        print("the chosen settings " + ("differ from" if differ else "match")
              + f" {hparams_file.HPARAMS_PATH}")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
