"""The verdict cache: how a functional program ended in the sandbox, kept so that a later run does
not execute it again.

A functional test's program is a task's tests around a cached completion, so a warm run builds the
same programs as the run before it, and executing them again (thousands with every algorithm)
was most of a warm run's time. An entry's key hashes everything the verdict depends on: the
program (which embeds the checker, `leakbench.checker`) and the sandbox's fingerprint (limits,
interpreter and its version, isolation, the sandbox's code; `leakbench.sandbox.fingerprint`).

Only verdicts the program decides are kept: passed, failed and memory. A timeout depends on how
busy the machine was and an "error" is the sandbox's own failure; both run again the next time.
Only the status, reason and duration are kept, not the output: the verdict is made of those.

Each entry is one JSON file in ``<cache>/verdicts``, written whole or not at all
(leakbench.atomic). It is trusted only when it parses, names its own key and its checksum
matches, so a truncated or edited entry is a miss: the program runs and the entry is written anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from leakbench import sandbox
from leakbench.atomic import write_atomically
from leakbench.sandbox import Limits, Result

KEPT = ("passed", "failed", "memory")
_FIELDS = ("status", "reason", "duration_s")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _checksum(entry: dict) -> str:
    return _sha256(json.dumps({name: entry[name] for name in ("key", *_FIELDS)}, sort_keys=True))


class VerdictCache:
    """Verdicts of programs run under `limits`, in `directory`. With ``reuse=False`` (--rebuild)
    no entry is read, every program runs and its entry is written over the old one."""

    def __init__(self, directory: Path, limits: Limits, *, reuse: bool = True) -> None:
        self.directory = Path(directory)
        self.limits = limits
        self.reuse = reuse
        self._context = _sha256(json.dumps(sandbox.fingerprint(limits), sort_keys=True))

    def key(self, program: str) -> str:
        return _sha256(f"{self._context}\n{_sha256(program)}")

    def get(self, program: str) -> Result | None:
        """The stored verdict of `program`, or None when there is none to trust."""
        if not self.reuse:
            return None
        key = self.key(program)
        try:
            entry = json.loads((self.directory / f"{key}.json").read_bytes())
            if entry["key"] != key or entry["checksum"] != _checksum(entry):
                return None
            status, reason, duration = (entry[name] for name in _FIELDS)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if status not in KEPT:
            return None
        return Result(status, reason, duration, "", "")

    def put(self, program: str, result: Result) -> None:
        """Keep `result` as the verdict of `program` when the program decided it."""
        if result.status not in KEPT:
            return
        entry = {"key": self.key(program), "status": result.status, "reason": result.reason,
                 "duration_s": result.duration_s}
        entry["checksum"] = _checksum(entry)
        # The verdict stands whether or not it can be kept (a full or read-only cache).
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(self.directory / f"{entry['key']}.json", json.dumps(entry))


def run_task(task, completion: str, cache: VerdictCache) -> Result:
    """How `completion` of the functional `task` (leakbench.probes.FunctionalTask) ends: the
    cached verdict, else the sandbox's (the checker's report, `leakbench.functional`), then kept."""
    program = task.program(completion)
    cached = cache.get(program)
    if cached is not None:
        return cached
    result = sandbox.run_program(program, cache.limits, allow_execution=True,
                                 reports_verdict=True)
    cache.put(program, result)
    return result
