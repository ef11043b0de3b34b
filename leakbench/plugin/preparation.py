"""The `prepared` fixture: every variant built, every completion generated and the privacy
metrics measured before the first test judges one (leakbench.pipeline does the work).

Only what the collected tests need is made: the requests of the tests left after -k, -m and --lf,
and the privacy metrics of the algorithms whose memorization tests were collected. Under xdist
every worker asks; the pipeline's artifacts are locked, so the first builds them and the others
wait for them and read them.
"""

from __future__ import annotations

import errno
import uuid
from pathlib import Path
from typing import NoReturn

import pytest

from leakbench.attacked import attacked_name
from leakbench.deletion_requests import request_name
from leakbench.plugin.collection import RUN_CASES, SUBJECTS
from leakbench.plugin.command_line import MODEL_SPEC, RUN_OPTIONS

_FULL_OR_READ_ONLY = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


def _needed_requests(session: pytest.Session, options) -> dict[str, list]:
    """Per variant, the requests of the collected tests (after -k, -m, --lf deselection): an
    attack test's under its attacked variant's name (leakbench.attacked), so that only the
    attacked variants some collected test asks for are built. A test that pytest skips
    unconditionally (a `skip` mark, the placeholder of an empty parameter set) asks for nothing."""
    needed: dict[str, list] = {}
    for item in session.items:
        if item.get_closest_marker("skip"):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        subject = next((params[k] for k in SUBJECTS if k in params), None)
        if "algorithm" not in params or subject is None:
            continue
        name = params["algorithm"]
        if "attack" in params:
            name = attacked_name(name, params["attack"])
        if "deletion_request" in params:
            name = request_name(name, params["deletion_request"])
        needed.setdefault(name, []).append(subject.request(options.decoding))
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


@pytest.fixture(scope="session")
def prepared(request: pytest.FixtureRequest):
    """Every variant built, every completion generated (`pipeline.prepare`) and the privacy
    metrics of the collected memorization tests measured (`pipeline.measure`), once per run: the
    run's "prepare" stage (leakbench.progress), of which every other stage is a part, so that the
    terminal shows progress from the first test's start."""
    from leakbench import pipeline, progress
    from leakbench.endpoint import EndpointError
    from leakbench.engine_memory import EngineMemoryShort
    from leakbench.models import ModelUnavailable
    from leakbench.serving import EngineFailed

    config = request.config
    options = config.stash[RUN_OPTIONS]
    run_id = getattr(config, "workerinput", {}).get("testrunuid") or uuid.uuid4().hex
    try:
        with progress.stage("prepare"):
            generated = pipeline.prepare(
                config.stash[MODEL_SPEC], options.algorithms, config.stash[RUN_CASES],
                _needed_requests(request.session, options), options.cache_dir,
                rebuild=options.rebuild, run_id=run_id, endpoint_url=options.endpoint,
                engine_args=options.engine_args, metrics=options.metrics,
                measured=_measured_algorithms(request.session), requests=options.requests)
            return pipeline.measure(generated, options.cache_dir, rebuild=options.rebuild,
                                    run_id=run_id)
    except (EngineFailed, EngineMemoryShort, EndpointError, ModelUnavailable) as err:
        _stop(request, str(err))
    except OSError as err:
        if err.errno not in _FULL_OR_READ_ONLY:
            raise
        where = Path(err.filename).parent if err.filename else options.cache_dir
        _stop(request, f"LeakBench could not write to {where}: {err.strerror} (cache: "
                       f"{options.cache_dir}; free space there or choose another with --cache-dir)")
    except Exception as err:
        # Every test asks for this fixture and pytest raises its error again in each of them, so a
        # broken install would print the same traceback for each of a run's thousands of tests.
        # The first test shows it once and the run stops.
        request.session.shouldstop = (f"LeakBench could not prepare the run: "
                                      f"{type(err).__name__}: {err}")
        raise
