"""Session fixtures of the benchmark: the models, planted, unlearned and served, that it judges.

`pytest_generate_tests` turns the data into tests: a test that takes `algorithm` runs once per
--algo choice; one that takes `forget_probe`, `holdout_probe` or `functional_task` runs once per
probe or task. The `prepared` fixture builds every variant and generates every completion the
collected tests need (leakbench.pipeline) before the first test reads one, with the privacy
metrics of the collected `memorization` tests (leakbench.privacy_metrics); tests only judge.
"""

from __future__ import annotations

import errno
import uuid
from pathlib import Path
from typing import NoReturn

import pytest

from leakbench.cases import CaseFileError
from leakbench.models import family
from leakbench.plant import plant_config
from leakbench.plugin import MODEL_SPEC, RUN_OPTIONS, check_output_dirs
from leakbench.probes import PrivacyData, functional_tasks
from leakbench.redaction import Redactor

PRIVACY_DATA = pytest.StashKey[PrivacyData]()


def privacy_data(config: pytest.Config) -> PrivacyData:
    """The cases of this run: the part of the forget set the model's planting memorizes
    (leakbench.plant.PlantConfig.forget_samples), every user case, the holdout set."""
    if PRIVACY_DATA not in config.stash:
        cases_dir = config.stash[RUN_OPTIONS].cases_dir or config.rootpath / "cases"
        planted = plant_config(family(config.stash[MODEL_SPEC])).forget_samples
        try:
            config.stash[PRIVACY_DATA] = PrivacyData.load(cases_dir, planted)
        except CaseFileError as err:
            raise pytest.UsageError(str(err)) from None
    return config.stash[PRIVACY_DATA]


def _collects_benchmark(config: pytest.Config) -> bool:
    """Whether this run collects benchmark/ (not the harness's own tests/)."""
    benchmark = config.rootpath / "benchmark"
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path == benchmark or benchmark in path.parents or path in benchmark.parents:
            return True
    return False


@pytest.hookimpl(trylast=True)  # after the plugin has validated the options
def pytest_configure(config: pytest.Config) -> None:
    """Check the output directories and load the cases now when the benchmark is collected: an
    unwritable directory or a malformed case file is then a usage error (one line, exit status 4)
    like a mistyped option, not a failure of the first stage or a collection error with a
    traceback."""
    if _collects_benchmark(config):
        check_output_dirs(config)
        privacy_data(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config, names = metafunc.config, metafunc.fixturenames
    if "algorithm" in names:
        metafunc.parametrize("algorithm", config.stash[RUN_OPTIONS].algorithms, scope="session")
    for split in ("forget", "holdout"):
        if f"{split}_probe" in names:
            probes = privacy_data(config).leak_probes(split)
            metafunc.parametrize(f"{split}_probe", probes, ids=[p.test_id for p in probes])
    if "functional_task" in names:
        tasks = functional_tasks()
        metafunc.parametrize("functional_task", tasks, ids=[t.test_id for t in tasks])


@pytest.fixture(scope="session")
def privacy_data_of_run(pytestconfig: pytest.Config) -> PrivacyData:
    """The forget set (with the user's case files) and the holdout set of this run."""
    return privacy_data(pytestconfig)


@pytest.fixture(scope="session")
def redactor(privacy_data_of_run: PrivacyData, run_options) -> Redactor:
    """What every benchmark test's message goes through: the run's values masked (unless
    --show-secrets), control characters escaped."""
    return Redactor(privacy_data_of_run.forget + privacy_data_of_run.holdout,
                    show_secrets=run_options.show_secrets)


def _needed_requests(session: pytest.Session, options) -> dict[str, list]:
    """Per algorithm, the requests of the collected tests (after -k, -m, --lf deselection)."""
    needed: dict[str, list] = {}
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        subject = next((params[k] for k in ("forget_probe", "holdout_probe", "functional_task")
                        if k in params), None)
        if "algorithm" in params and subject is not None:
            needed.setdefault(params["algorithm"], []).append(
                subject.request(options.samples, options.temperature))
    return needed


def _measured_algorithms(session: pytest.Session) -> tuple[str, ...]:
    """The algorithms of the collected memorization tests: their privacy metrics are computed."""
    measured = []
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.get_closest_marker("memorization") and "algorithm" in params:
            measured.append(params["algorithm"])
    return tuple(dict.fromkeys(measured))


def _stop(request: pytest.FixtureRequest, message: str) -> NoReturn:
    """End the run with `message`. An xdist worker cannot pytest.exit (the controller reports an
    INTERNALERROR and loses the message): it fails this test and asks the controller to stop,
    which prints the message as the reason."""
    if hasattr(request.config, "workerinput"):
        request.session.shouldstop = message
        pytest.fail(message, pytrace=False)
    pytest.exit(message, returncode=3)


_FULL_OR_READ_ONLY = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


@pytest.fixture(scope="session")
def prepared(request: pytest.FixtureRequest):
    """Every variant built and every completion generated, once per run (see leakbench.pipeline)."""
    from leakbench import pipeline
    from leakbench.endpoint import EndpointError
    from leakbench.engine_memory import EngineMemoryShort
    from leakbench.models import ModelUnavailable
    from leakbench.serving import EngineFailed

    config = request.config
    options = config.stash[RUN_OPTIONS]
    run_id = getattr(config, "workerinput", {}).get("testrunuid") or uuid.uuid4().hex
    try:
        return pipeline.prepare(
            config.stash[MODEL_SPEC], options.algorithms, privacy_data(config),
            _needed_requests(request.session, options), options.cache_dir,
            rebuild=options.rebuild, run_id=run_id, endpoint_url=options.endpoint,
            engine_args=options.engine_args, metrics=options.metrics,
            measured=_measured_algorithms(request.session))
    except (EngineFailed, EngineMemoryShort, EndpointError, ModelUnavailable) as err:
        _stop(request, str(err))
    except OSError as err:
        if err.errno not in _FULL_OR_READ_ONLY:
            raise
        where = Path(err.filename).parent if err.filename else options.cache_dir
        _stop(request, f"LeakBench could not write to {where}: {err.strerror} (cache: "
                       f"{options.cache_dir}; free space there or choose another with --cache-dir)")
