"""The validation split, declared once: the planted owners and the functional tasks that tuning
(leakbench.tune) selects settings on, apart from those the benchmark reports.

Settings chosen on the probes a table then reports are selected on the test set. So about
`TUNING_FRACTION` of the generated forget set's owners are tuning owners: planted and unlearned
like every other owner, asked by the tuner, never reported by the benchmark. The capability
probe's tasks are split by their (family, constant) pair, so that no reported task shares its
pattern and constant with a tuning task, and HumanEval's by problem.

Membership is a hash of the owner's id or the task's key, not a draw from the set at hand: an
owner is on the same side whichever samples a run plants (a model family's thinning of the
forget set, more generated owners), so a reported owner was never seen in selection by any run.
The user's case files are always reported: they are the questions a release asks, never data
to tune on.
"""

from __future__ import annotations

import hashlib

from leakbench.cases import Sample

TUNING_FRACTION = 0.25
_SALT = "leakbench-tuning"  # another salt would draw another split: declared once, here


def _in_tuning(key: str) -> bool:
    digest = hashlib.sha256(f"{_SALT}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") < TUNING_FRACTION * 2**32


def tuning_owners(generated: list[Sample]) -> frozenset[str]:
    """The tuning owners among the owners of the generated forget samples."""
    return frozenset(s.owner for s in generated if _in_tuning(f"owner:{s.owner}"))


def is_tuning_task(source: str, task_id: str) -> bool:
    """Whether a functional task (leakbench.probes.FunctionalTask's source and id) is a tuning
    task: a capability task by its family and constant ("add-7" of "add-7-plus-x"), a HumanEval
    problem by its id."""
    key = "-".join(task_id.split("-")[:2]) if source == "capability" else task_id
    return _in_tuning(f"{source}:{key}")
