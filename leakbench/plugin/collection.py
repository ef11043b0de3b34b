"""The benchmark's tests, made from the run's cases.

`pytest_generate_tests` turns data into tests: a test that takes `algorithm` runs once per --algo
choice; one that takes `forget_probe`, `holdout_probe` or `functional_task` runs once per probe or
task, with the probe's or task's readable id. The cases are loaded in `pytest_configure`, so a
malformed case file is a usage error (one line, exit status 4) like a mistyped option, not a
collection error with a traceback.
"""

from __future__ import annotations

import pytest

from leakbench.cases import CaseFileError
from leakbench.models import family
from leakbench.plant import plant_config
from leakbench.plugin.command_line import MODEL_SPEC, RUN_OPTIONS
from leakbench.probes import PrivacyData, functional_tasks
from leakbench.redaction import Redactor

RUN_CASES = pytest.StashKey[PrivacyData]()


@pytest.hookimpl(trylast=True)  # after command_line has validated the options
def pytest_configure(config: pytest.Config) -> None:
    """The cases of this run: the part of the forget set the model's planting memorizes
    (leakbench.plant.PlantConfig.forget_samples), every user case, the holdout set."""
    cases_dir = config.stash[RUN_OPTIONS].cases_dir or config.rootpath / "cases"
    planted = plant_config(family(config.stash[MODEL_SPEC])).forget_samples
    try:
        config.stash[RUN_CASES] = PrivacyData.load(cases_dir, planted)
    except CaseFileError as err:
        raise pytest.UsageError(str(err)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config, names = metafunc.config, metafunc.fixturenames
    if "algorithm" in names:
        metafunc.parametrize("algorithm", config.stash[RUN_OPTIONS].algorithms, scope="session")
    for split in ("forget", "holdout"):
        if f"{split}_probe" in names:
            probes = config.stash[RUN_CASES].leak_probes(split)
            metafunc.parametrize(f"{split}_probe", probes, ids=[p.test_id for p in probes])
    if "functional_task" in names:
        tasks = functional_tasks()
        metafunc.parametrize("functional_task", tasks, ids=[t.test_id for t in tasks])


@pytest.fixture(scope="session")
def run_cases(pytestconfig: pytest.Config) -> PrivacyData:
    """The forget set (with the user's case files) and the holdout set of this run."""
    return pytestconfig.stash[RUN_CASES]


@pytest.fixture(scope="session")
def redactor(run_cases: PrivacyData, run_options) -> Redactor:
    """What every benchmark test's message goes through: the run's values masked (unless
    --show-secrets), control characters escaped."""
    return Redactor(run_cases.forget + run_cases.holdout, show_secrets=run_options.show_secrets)
