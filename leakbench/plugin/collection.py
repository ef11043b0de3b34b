"""The benchmark's tests, made from the run's cases.

`pytest_generate_tests` turns data into tests: a test that takes `algorithm` runs once per --algo
choice; one that takes `forget_probe`, `holdout_probe` or `functional_task` runs once per probe or
task, with the probe's or task's readable id, and one that takes `forget_sample` once per forget
secret, with the sample's id (none when no per-secret score is measured). An attack test takes
`attack` (once per --attacks setting, marked with its family) and `evaluated_probe` (the forget
probes every attack is judged on, leakbench.attacked.evaluated_probes) or `capability_task` (the
capability probe's tasks, asked of the planted model only: a quantizer that wrecks the model
shows there). A sequential test takes `deletion_request` and `deleted_probe` (per earlier
deletion request of --requests, the forget probes of the owners deleted by then) or
`capability_task`. The cases are loaded in `pytest_configure`, so a malformed case file is a usage
error (one line, exit status 4) like a mistyped option, not a collection error with a traceback.
"""

from __future__ import annotations

import pytest

import algorithms
import attacks
from leakbench.attacked import evaluated_probes
from leakbench.cases import CaseFileError
from leakbench.deletion_requests import deleted_owners, deletion_requests
from leakbench.models import family
from leakbench.plant import plant_config
from leakbench.plugin.command_line import MODEL_SPEC, RUN_OPTIONS
from leakbench.privacy_metrics import CALIBRATED_SCORES
from leakbench.probes import LeakProbe, PrivacyData, functional_tasks
from leakbench.redaction import Redactor

RUN_CASES = pytest.StashKey[PrivacyData]()
EVALUATED = pytest.StashKey[list]()  # the forget probes the attack tests judge
DELETED = pytest.StashKey[list]()  # (request number, probe of an owner deleted by then)
# The parameters that make one test of a variant: what it asks the variant (`request`).
SUBJECTS = ("forget_probe", "holdout_probe", "functional_task", "evaluated_probe",
            "capability_task", "deleted_probe")


@pytest.hookimpl(trylast=True)  # after command_line has validated the options
def pytest_configure(config: pytest.Config) -> None:
    """The cases of this run: the part of the forget set the model's planting memorizes
    (leakbench.plant.PlantConfig.forget_samples), every user case, the holdout set, and the
    decoys when --metrics asks for exposure."""
    options = config.stash[RUN_OPTIONS]
    cases_dir = options.cases_dir or config.rootpath / "cases"
    planted = plant_config(family(config.stash[MODEL_SPEC])).forget_samples
    try:
        config.stash[RUN_CASES] = PrivacyData.load(cases_dir, planted,
                                                   decoys="exposure" in options.metrics,
                                                   decoy_count=options.decoys)
    except CaseFileError as err:
        raise pytest.UsageError(str(err)) from None
    try:
        config.stash[EVALUATED] = (evaluated_probes(config.stash[RUN_CASES])
                                   if options.attacks else [])
    except ValueError as err:  # too few owners to split off a relearn slice
        raise pytest.UsageError(f"--attacks: {err}; or choose --attacks=none") from None
    try:
        config.stash[DELETED] = deleted_probes(config.stash[RUN_CASES], options.requests)
    except ValueError as err:  # more requests than owners
        raise pytest.UsageError(str(err)) from None


def deleted_probes(data: PrivacyData, requests: int) -> list[tuple[int, LeakProbe]]:
    """The sequential tests' subjects: per deletion request before the last, every reported
    forget probe of an owner deleted by then (leakbench.deletion_requests)."""
    if requests == 1:
        return []
    split = deletion_requests(data.forget, requests)
    probes = data.leak_probes("forget")
    return [(number, probe) for number in range(1, requests)
            for probe in probes if probe.sample.owner in deleted_owners(split, number)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config, names = metafunc.config, metafunc.fixturenames
    options = config.stash[RUN_OPTIONS]
    if "algorithm" in names:
        chosen = options.algorithms
        if "deletion_request" in names:  # only a loss algorithm serves requests one by one
            chosen = tuple(a for a in chosen if algorithms.get(a).kind == "loss")
        elif "capability_task" in names:  # the planted model's capability under each attack
            chosen = tuple(a for a in chosen if algorithms.get(a).kind == "identity")
        metafunc.parametrize("algorithm", chosen, scope="session")
    if "deleted_probe" in names:
        pairs = config.stash[DELETED]
        metafunc.parametrize(["deletion_request", "deleted_probe"], pairs,
                             ids=[f"request{n}-{p.test_id}" for n, p in pairs])
    elif "deletion_request" in names:
        numbers = range(1, options.requests)
        metafunc.parametrize("deletion_request", numbers, ids=[f"request{n}" for n in numbers])
    if "attack" in names:
        metafunc.parametrize("attack", [
            pytest.param(name, id=name, marks=getattr(pytest.mark, attacks.get(name).family.name))
            for name in options.attacks], scope="session")
    if "evaluated_probe" in names:
        probes = config.stash[EVALUATED]
        metafunc.parametrize("evaluated_probe", probes, ids=[p.test_id for p in probes])
    if "capability_task" in names:
        tasks = [t for t in functional_tasks() if t.source == "capability"]
        metafunc.parametrize("capability_task", tasks, ids=[t.test_id for t in tasks])
    if "forget_sample" in names:  # the per-secret memorization tests, where a score is measured
        measured = not options.endpoint and any(group in options.metrics
                                                for group in CALIBRATED_SCORES.values())
        samples = config.stash[RUN_CASES].reported if measured else []
        metafunc.parametrize("forget_sample", samples, ids=[s.id for s in samples])
    for split in ("forget", "holdout"):
        if f"{split}_probe" in names:
            probes = config.stash[RUN_CASES].leak_probes(split)
            metafunc.parametrize(f"{split}_probe", probes, ids=[p.test_id for p in probes])
    if "functional_task" in names:
        tasks = functional_tasks()
        metafunc.parametrize("functional_task", tasks, ids=[t.test_id for t in tasks])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of an empty choice are deselected, where pytest would show each as a skipped
    placeholder: attack tests (--attacks=none, or no planted model in --algo for the capability
    under attack), sequential tests (--requests=1, or no loss algorithm in --algo) and
    per-secret memorization tests (no per-secret score in --metrics, or --endpoint, where no
    score is measured)."""
    empty = [item for item in items if item.get_closest_marker("skip") and (
        item.get_closest_marker("attack") or item.get_closest_marker("sequential")
        or "forget_sample" in item.fixturenames)]
    if empty:
        config.hook.pytest_deselected(items=empty)
        dropped = set(empty)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture(scope="session")
def run_cases(pytestconfig: pytest.Config) -> PrivacyData:
    """The forget set (with the user's case files) and the holdout set of this run."""
    return pytestconfig.stash[RUN_CASES]


@pytest.fixture(scope="session")
def redactor(run_cases: PrivacyData, run_options) -> Redactor:
    """What every benchmark test's message goes through: the values of every case masked
    (unless --show-secrets), those of the forget samples this run does not plant included (a
    model may write one all the same), control characters escaped."""
    return Redactor(run_cases.forget + run_cases.unplanted + run_cases.holdout,
                    show_secrets=run_options.show_secrets)
