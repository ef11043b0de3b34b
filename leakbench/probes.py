"""What the benchmark asks a model: leak probes from the privacy data and functional tasks.

Each probe or task becomes one test per algorithm; its `request` is what goes to the engine. Leak
probes continue a prompt for a few lines (an indirect leak may come on the line after the
targeted one); functional tasks stop at the usual HumanEval stop sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from leakbench import capability, humaneval, validation
from leakbench.cases import (
    FORGET_FILE,
    HOLDOUT_FILE,
    Decoys,
    Probe,
    Sample,
    collect_case_files,
    copies,
    load_jsonl,
)
from leakbench.schema import Decoding, Request

LEAK_MAX_TOKENS = 48
CAPABILITY_MAX_TOKENS = 64
HUMANEVAL_MAX_TOKENS = 256


@dataclass(frozen=True)
class LeakProbe:
    split: str  # "forget" (planted, then unlearned; user cases too) or "holdout" (never trained)
    sample: Sample
    probe: Probe
    copies: int = 1  # the texts of the split that hold the sample's value (cases.copies)

    @property
    def test_id(self) -> str:
        suffix = "" if self.probe.style == "direct" else f"/{self.probe.id}"
        return f"{self.sample.id}{suffix}"

    def request(self, decoding: Decoding) -> Request:
        return Request(self.probe.prompt, decoding.sampling(LEAK_MAX_TOKENS, ("\n\n",)))


@dataclass(frozen=True)
class FunctionalTask:
    source: str  # "capability" | "humaneval"
    test_id: str
    prompt: str
    tests: object  # capability.Task or humaneval.Problem

    def request(self, decoding: Decoding) -> Request:
        limit = CAPABILITY_MAX_TOKENS if self.source == "capability" else HUMANEVAL_MAX_TOKENS
        return Request(self.prompt, decoding.sampling(limit, humaneval.STOP_SEQUENCES))

    def program(self, completion: str) -> str:
        """The program the sandbox runs (`leakbench.functional`); run it with
        ``reports_verdict=True``."""
        if self.source == "capability":
            return capability.program(self.tests, humaneval.truncate(completion))
        return humaneval.program(self.tests, completion)


@dataclass(frozen=True)
class PrivacyData:
    forget: list[Sample]  # what is planted: the generated forget set plus the user's case files
    holdout: list[Sample]
    decoys: Decoys | None = None  # the candidates of exposure, loaded when it is measured
    tuning_owners: frozenset[str] = frozenset()  # planted, never reported (leakbench.validation)
    # The generated forget samples that `load` cut off: neither planted nor probed, but the
    # user's data all the same, so the run's Redactor masks their values too.
    unplanted: list[Sample] = field(default_factory=list)

    @classmethod
    def load(cls, cases_dir: Path, forget_samples: int | None = None, *, decoys: bool = False,
             decoy_count: int | None = None) -> PrivacyData:
        """The cases of `cases_dir`. With `forget_samples`, the generated forget set is cut to
        about that many samples (`every_kth_owner`); the user's cases are always all kept. With
        `decoys`, its decoys file too, `decoy_count` of each kind (leakbench.cases.decoys;
        None: all)."""
        every = load_jsonl(cases_dir / FORGET_FILE)
        generated = every if forget_samples is None else every_kth_owner(every, forget_samples)
        kept = {s.id for s in generated}
        return cls(generated + collect_case_files(cases_dir), load_jsonl(cases_dir / HOLDOUT_FILE),
                   Decoys.load(cases_dir, decoy_count) if decoys else None,
                   validation.tuning_owners(generated), [s for s in every if s.id not in kept])

    @property
    def reported(self) -> list[Sample]:
        """The planted samples the benchmark reports: those of owners outside the tuning part."""
        return [s for s in self.forget if s.owner not in self.tuning_owners]

    @property
    def tuning(self) -> list[Sample]:
        """The planted samples of the tuning owners: what leakbench.tune selects settings on."""
        return [s for s in self.forget if s.owner in self.tuning_owners]

    def measured(self, split: str) -> list[Sample]:
        """The samples a split's measurements are about: "forget" (the reported planted
        samples), "holdout" or "tuning"."""
        return {"forget": self.reported, "holdout": self.holdout, "tuning": self.tuning}[split]

    def leak_probes(self, split: str) -> list[LeakProbe]:
        """The probes of `measured(split)`, each with the copies of its value among the texts
        that split's model saw or did not see (all planted texts for "forget" and "tuning")."""
        held = copies(self.holdout if split == "holdout" else self.forget)
        return [LeakProbe(split, s, p, held[s.id]) for s in self.measured(split)
                for p in s.probes]


def every_kth_owner(samples: list[Sample], about: int) -> list[Sample]:
    """The samples of every k-th owner, k the smallest that leaves at most about `about` samples.

    Whole owners, so that "another field of the same person" stays a possible leak; a stride
    rather than the first owners, so that people and organizations keep their proportions. This
    is how a small model is given a forget set it can memorize in minutes (PlantConfig)."""
    owners = list(dict.fromkeys(s.owner for s in samples))
    stride = max(1, -(-len(samples) // max(1, about)))
    kept = set(owners[::stride])
    return [s for s in samples if s.owner in kept]


def functional_tasks(split: str = "reported") -> list[FunctionalTask]:
    """The capability probe's tasks and HumanEval's problems of one part of the validation split
    (leakbench.validation): "reported" (the benchmark's tests) or "tuning" (leakbench.tune's)."""
    tasks = [FunctionalTask("capability", t.task_id, t.prompt, t) for t in capability.probe_tasks()]
    tasks += [FunctionalTask("humaneval", humaneval.task_slug(p.task_id), p.prompt, p)
              for p in humaneval.load_problems()]
    tuning = split == "tuning"
    return [t for t in tasks if validation.is_tuning_task(t.source, t.test_id) == tuning]
