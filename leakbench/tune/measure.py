"""Running the trials: each trial's variant unlearned from the planted model (an artifact keyed by
its settings, like every variant), every variant and the planted model asked in one engine pass,
and judged as the benchmark judges: greedy completions, the direct judge on the direct probes,
the capability tasks in the sandbox (their verdicts kept in the same cache as the tests').

Both parts of the validation split are measured in that pass: the tuning part, which the rule
chooses on (leakbench.tune.trials.choose), and the reported part, which only the report and the
Pareto chart show.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from algorithms.hparams import load_hparams
from leakbench import pipeline, progress
from leakbench.completions import request_key
from leakbench.judges import judge_direct
from leakbench.models import ModelSpec
from leakbench.probes import FunctionalTask, LeakProbe, PrivacyData, functional_tasks
from leakbench.sandbox import Limits
from leakbench.schema import Decoding
from leakbench.tune.trials import Score, Trial
from leakbench.verdicts import VerdictCache, run_task

PLANTED = "none"  # the variant every retention is measured against
SPLITS = ("tuning", "reported")


@dataclass(frozen=True)
class Questions:
    """What one part of the validation split asks each variant."""

    probes: list[LeakProbe]  # the direct probes of its owners
    tasks: list[FunctionalTask]  # its capability tasks (and HumanEval problems, if asked)

    @classmethod
    def of(cls, data: PrivacyData, split: str, sources: tuple[str, ...]) -> Questions:
        samples_split = "forget" if split == "reported" else split
        probes = [p for p in data.leak_probes(samples_split) if p.probe.style == "direct"]
        tasks = [t for t in functional_tasks(split) if t.source in sources]
        if not probes or not tasks:
            raise ValueError(f"the {split} split has {len(probes)} direct probes and "
                             f"{len(tasks)} tasks; tuning needs both (more generated owners)")
        return cls(probes, tasks)


@dataclass(frozen=True)
class Measured:
    trial: Trial | None  # None: the planted model
    steps: int  # training steps the trial's unlearning ran (0 for the planted model)
    scores: dict[str, Score]  # per part of the split


def _steps(variant) -> int:
    log = (variant.adapter or variant.weights) / "unlearning_log.json"
    return json.loads(log.read_text())["steps"] if log.exists() else 0


def run_trials(spec: ModelSpec, trials: list[Trial], data: PrivacyData, cache_dir: Path, *,
               sources: tuple[str, ...] = ("capability",), rebuild: bool = False
               ) -> tuple[Measured, list[Measured]]:
    """The planted model's scores and every trial's, in the order of `trials`."""
    planting = pipeline.planting(spec, data, cache_dir, rebuild)
    variants = {PLANTED: planting.variant(PLANTED, data.forget, cache_dir, rebuild)}
    bases = {a: load_hparams(planting.family, a, own_table=False)
             for a in dict.fromkeys(t.algorithm for t in trials)}
    for position, trial in enumerate(trials, 1):
        variants[trial.name] = planting.variant(
            trial.algorithm, data.forget, cache_dir, rebuild,
            hp=trial.hyper(bases[trial.algorithm]),
            label=f"trial {trial.name} ({position}/{len(trials)})")

    questions = {split: Questions.of(data, split, sources) for split in SPLITS}
    decoding = Decoding()
    requests = [item.request(decoding) for q in questions.values()
                for item in (*q.probes, *q.tasks)]
    generator = pipeline.healed_engines(variants, cache_dir, {},
                                        [p for q in questions.values() for p in q.probes])
    completions = pipeline.fill(pipeline.engine_stores(variants, cache_dir, {}),
                                {name: requests for name in variants}, generator)
    passes = _sandbox_verdicts(questions, completions, decoding, cache_dir)

    def measured(name: str, trial: Trial | None) -> Measured:
        answers = completions[name]
        scores = {}
        for split, q in questions.items():
            leaked = sum(any(judge_direct(text, p.sample).leaked
                             for text in answers[request_key(p.request(decoding))])
                         for p in q.probes)
            passed = sum(passes[(t.test_id, answers[request_key(t.request(decoding))][0])]
                         for t in q.tasks)
            scores[split] = Score(leaked, len(q.probes), passed, len(q.tasks))
        return Measured(trial, _steps(variants[name]) if trial else 0, scores)

    return measured(PLANTED, None), [measured(t.name, t) for t in trials]


def _sandbox_verdicts(questions: dict[str, Questions], completions: dict, decoding: Decoding,
                      cache_dir: Path) -> dict[tuple[str, str], bool]:
    """Whether each distinct (task, completion) of the run passes, run in the sandbox in
    parallel (a verdict of an earlier run is reused, leakbench.verdicts)."""
    tasks = {t.test_id: t for q in questions.values() for t in q.tasks}
    pairs = sorted({(task_id, answers[request_key(task.request(decoding))][0])
                    for answers in completions.values() for task_id, task in tasks.items()})
    cache = VerdictCache(cache_dir / "verdicts", Limits())
    with progress.stage("sandbox", total=len(pairs), unit="program") as reported, \
            ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        def verdict(pair: tuple[str, str]) -> bool:
            passed = run_task(tasks[pair[0]], pair[1], cache).status == "passed"
            reported.advance()
            return passed

        return dict(zip(pairs, pool.map(verdict, pairs)))
