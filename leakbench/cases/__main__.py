"""``python -m leakbench.cases check PATH...``: what case files hold, or every error, checked
exactly as a run loads them and without building anything.

A PATH is a case file or a cases directory; a directory is checked as a run reads it (the forget
and holdout sets, then the user's case files, ids unique across all, each owner's records
agreeing). For each valid file it prints its records, their kinds and probes and how many texts
hold a value held more than once; for each invalid one, every error. With
``--tokenizer MODEL_DIR`` (a model directory, or a Hugging Face id in the local cache), each probe
that does not end on a token boundary of that tokenizer is shown with the characters token
healing will cut off it (leakbench.healing). The exit status is 0 when every file is valid, 1
otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from leakbench.cases.errors import CaseFileError
from leakbench.cases.files import (
    FORGET_FILE,
    HOLDOUT_FILE,
    display_path,
    owner_conflicts,
    read_case_files,
    run_case_files,
)
from leakbench.cases.samples import Sample, copies

PROG = "python -m leakbench.cases"
GENERATED = (FORGET_FILE, HOLDOUT_FILE)  # summarized in one line: they hold a thousand records


def _counts(counter: Counter) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items()))


def summary(where: str, samples: list[Sample], held: dict[str, int], *, records: bool,
            tokenizer=None) -> list[str]:
    """What a file holds: one line for the file, then (with `records`) one line per record, with
    the texts that hold its value (`held`, from leakbench.cases.copies) where there are several;
    with a `tokenizer`, the characters healing cuts off each probe that needs it."""
    probes = Counter(probe.style for sample in samples for probe in sample.probes)
    lines = [f"{where}: {len(samples)} record{'s' * (len(samples) != 1)} "
             f"(kinds: {_counts(Counter(s.kind for s in samples)) or 'none'}), "
             f"{sum(probes.values())} probes ({_counts(probes) or 'none'})"]
    if records:
        lines += [f"  {s.id}  {s.kind}  owner {s.owner}  probes: "
                  + ", ".join(p.id + _healed(tokenizer, s, p.prompt) for p in s.probes)
                  + (f"  (value in {held[s.id]} texts)" if held[s.id] > 1 else "")
                  + ("" if s.kind_check else "  (kind_check: false)") for s in samples]
    return lines


def _healed(tokenizer, sample: Sample, prompt: str) -> str:
    """`` (healed: asked without '...')`` when the prompt does not end on a token boundary."""
    if tokenizer is None:
        return ""
    from leakbench.healing import boundary

    kept = boundary(tokenizer, prompt, sample.secret + sample.text[sample.span[1]:])
    return f" (healed: asked without {prompt[kept:]!r})" if kept < len(prompt) else ""


def _files(paths: list[str]) -> list[Path]:
    """The case files of `paths`: each file itself, each directory as a run reads it."""
    files: list[Path] = []
    for path in map(Path, paths):
        files += run_case_files(path) if path.is_dir() else [path]
    return files


def check(paths: list[str], tokenizer=None) -> int:
    try:
        files = _files(paths)
    except CaseFileError as error:  # a directory that cannot be listed
        print(error)
        return 1
    loaded, errors = read_case_files(files)
    conflicts = owner_conflicts(loaded)
    splits = ([s for path, samples in loaded.items() if path.name == HOLDOUT_FILE for s in samples],
              [s for path, samples in loaded.items() if path.name != HOLDOUT_FILE for s in samples])
    held = {sample_id: n for split in splits for sample_id, n in copies(split).items()}
    for path in files:
        if path in loaded:
            print("\n".join(summary(display_path(path), loaded[path], held,
                                    records=path.name not in GENERATED, tokenizer=tokenizer)))
    for error in errors + conflicts:
        print(error)
    errors += conflicts
    if errors:
        failed = len(files) - len(loaded) + len({error.where for error in conflicts})
        print(f"{len(errors)} error{'s' * (len(errors) != 1)} in {failed} "
              f"file{'s' * (failed != 1)}")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Check leak-case files without "
                                     "building anything.")
    commands = parser.add_subparsers(dest="command", required=True)
    checker = commands.add_parser("check", help="print what case files hold, or every error")
    checker.add_argument("paths", nargs="+", metavar="PATH",
                         help="a case file (.py, .jsonl, .yaml, .yml) or a cases directory")
    checker.add_argument("--tokenizer", metavar="MODEL_DIR",
                         help="show the probes that token healing will cut back under this "
                         "model's tokenizer (a model directory or a Hugging Face id in the local "
                         "cache)")
    args = parser.parse_args(argv)
    return check(args.paths, _tokenizer(parser, args.tokenizer) if args.tokenizer else None)


def _tokenizer(parser: argparse.ArgumentParser, name: str):
    """The fast tokenizer of `name`, or a usage error naming it (nothing is downloaded). A
    path to no directory is refused before transformers is imported, which takes seconds; a
    Hugging Face id (`name` or `namespace/name`) only transformers can look up."""
    looks_like_path = Path(name).is_absolute() or name.startswith((".", "~")) or name.count("/") > 1
    directory = Path(name).expanduser()  # transformers would read `~/model` as a relative path
    if looks_like_path and not directory.is_dir():
        parser.error(f"--tokenizer: no tokenizer at {name!r} (no such directory; give a model "
                     "directory or a Hugging Face id in the local cache)")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory) if looks_like_path else name,
                                                  local_files_only=True)
    except (OSError, ValueError) as err:
        parser.error(f"--tokenizer: no tokenizer at {name!r} ({' '.join(str(err).split())[:200]})")
    if not getattr(tokenizer, "is_fast", False):
        parser.error(f"--tokenizer: {name!r} has no fast tokenizer (healing reads token offsets)")
    return tokenizer


if __name__ == "__main__":
    sys.exit(main())
