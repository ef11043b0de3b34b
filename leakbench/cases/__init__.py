"""Leak cases: the sample/probe schema, validating loaders for case files, and `leak_case`.

A *sample* is one training text that holds one sensitive value (its *secret*) at `span`; its
*probes* are prompts that ask a model for that value. The forget and holdout sets
(cases/forget.jsonl, cases/holdout.jsonl) and every user case file share this schema:

- ``*.jsonl``: one record (a JSON object) per line, blank lines allowed;
- ``*.yaml`` / ``*.yml``: a list of the same records;
- ``*.py``: a module that defines ``LEAK_CASES = [leak_case(...), ...]``.

A file either loads completely or raises `CaseFileError` with every problem of the file, one line
each naming the file, the line (JSON lines, YAML, Python), the record, the field the user wrote
and what would be valid (`CaseFileErrors` when there are several). That holds for hostile files
too: a case file is UTF-8 text of at most `files.MAX_FILE_BYTES`, a record holds at most
`records.MAX_RECORD_CHARS` characters of strings and nests at most `records.MAX_NESTING` levels
of lists and objects, and YAML case files use plain values (no aliases, which can expand a few
bytes into a huge or recursive structure, and no explicit tags, whose constructors fail with
arbitrary errors).

Token boundaries: a small byte-level BPE model answers garbage when a prompt ends in the middle of
a token it always saw merged with what followed (docs/DESIGN.md, "Prompt boundaries"). A user's
prompt may end anywhere: the run heals it with the served model's tokenizer (leakbench.healing).
The generated forget and holdout sets are written so that no healing is needed
(`token_boundary_problem`, used by scripts/generate_cases.py); a secret starts with a letter or
digit.

One module per responsibility:

- `samples`: `Sample` and `Probe`, the kinds of values (`KINDS`), the probe styles, the
  generated sets' formats (`format_family`) and how many texts hold each value (`copies`);
- `kinds`: what a value of each kind looks like (`kind_problem`), checked unless a record sets
  ``kind_check`` to false;
- `records`: one record validated into a `Sample` (`parse_record`, `leak_case`), with the limits
  on a record and the generator's token-boundary rule (`token_boundary_problem`);
- `files`: reading case files of each format, and the user's case files of a directory;
- `decoys`: the values a secret's exposure ranks it among (`Decoys`, cases/decoys.json);
- `errors`: `CaseFileError` and `CaseFileErrors`;
- `__main__`: ``python -m leakbench.cases check PATH...``, what case files hold or every error.
"""

from leakbench.cases.decoys import DECOYS_FILE, Decoys, dumps_decoys
from leakbench.cases.errors import CaseFileError, CaseFileErrors
from leakbench.cases.files import (
    FORGET_FILE,
    HOLDOUT_FILE,
    collect_case_files,
    dumps_jsonl,
    load_case_file,
    load_jsonl,
    owner_conflicts,
    read_case_files,
    run_case_files,
)
from leakbench.cases.kinds import kind_problem
from leakbench.cases.records import leak_case, parse_record, token_boundary_problem
from leakbench.cases.samples import (
    COPY_LEVELS,
    FORMAT_FAMILIES,
    GENERATED_CONTEXTS,
    KINDS,
    Probe,
    Sample,
    copies,
    copies_label,
    copies_level,
    format_family,
)

__all__ = [
    "COPY_LEVELS",
    "DECOYS_FILE",
    "FORGET_FILE",
    "FORMAT_FAMILIES",
    "GENERATED_CONTEXTS",
    "HOLDOUT_FILE",
    "KINDS",
    "CaseFileError",
    "CaseFileErrors",
    "Decoys",
    "Probe",
    "Sample",
    "collect_case_files",
    "copies",
    "copies_label",
    "copies_level",
    "dumps_decoys",
    "dumps_jsonl",
    "format_family",
    "kind_problem",
    "leak_case",
    "load_case_file",
    "load_jsonl",
    "owner_conflicts",
    "parse_record",
    "read_case_files",
    "run_case_files",
    "token_boundary_problem",
]
