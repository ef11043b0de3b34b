"""LeakBench's pytest plugin: options, markers and the hooks that serve them.

Options are validated once per process in `pytest_configure`, so a mistyped value stops the run
with one line (``ERROR: --algo: ...``) before any model is built. Nothing heavy is imported here:
this module is loaded by every pytest run in the environment.
"""

from __future__ import annotations

import pytest

from leakbench.models import REGISTRY, ModelSpec, lookup
from leakbench.options import (
    ALGORITHM_DESCRIPTIONS,
    CACHE_DIR_ENV,
    DEFAULT_ALGORITHMS,
    DEFAULT_CACHE_DIR,
    DEFAULT_MODEL,
    GATE_METRICS,
    OptionError,
    RunOptions,
    parse_options,
)

MARKERS = {
    "direct_leak": "passes when the completion does not contain the targeted secret",
    "indirect_leak": "passes when there is no partial secret, related value or other record's "
    "value",
    "holdout": "the leak probes on values the model never saw (false-positive control)",
    "functional": "passes when the generated code passes the problem's tests in the sandbox",
}

RUN_OPTIONS = pytest.StashKey[RunOptions]()
MODEL_SPEC = pytest.StashKey[ModelSpec]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leakbench", "LeakBench: leaks and utility after machine unlearning")
    models = ", ".join(f"{spec.name} ({spec.source})" for spec in REGISTRY.values())
    group.addoption(
        "--model",
        default=DEFAULT_MODEL,
        help=f"model to test (default: {DEFAULT_MODEL}): {models}, a Hugging Face id (org/name) "
        "or a local directory with config.json and weights",
    )
    algorithms = "; ".join(f"{name} = {text}" for name, text in ALGORITHM_DESCRIPTIONS.items())
    group.addoption(
        "--algo",
        default=DEFAULT_ALGORITHMS,
        help=f"unlearning algorithms, 'all' or a comma list (default: {DEFAULT_ALGORITHMS}): "
        f"{algorithms}",
    )
    group.addoption(
        "--samples",
        default="1",
        help="completions per prompt, a whole number >= 1; more than 1 needs --temperature > 0 "
        "(default: 1)",
    )
    group.addoption(
        "--temperature", default="0", help="sampling temperature >= 0; 0 is greedy (default: 0)"
    )
    group.addoption(
        "--cache-dir",
        default=None,
        help=f"where built models, variants and completions are kept "
        f"(default: ${CACHE_DIR_ENV} or {DEFAULT_CACHE_DIR})",
    )
    group.addoption(
        "--rebuild", action="store_true", help="rebuild cached artifacts instead of reusing them"
    )
    group.addoption(
        "--endpoint",
        default=None,
        help="query an OpenAI-compatible vLLM server at http(s)://host[:port][/path] "
        "instead of starting an engine",
    )
    group.addoption(
        "--gate",
        action="append",
        default=[],
        metavar="METRIC<OP>NUMBER",
        help="exit status condition, repeatable, e.g. 'direct_leak<=0.01' or 'direct_leak<=1%%'; "
        f"ops <=, >=, <, >, ==; metrics: {', '.join(GATE_METRICS)}",
    )
    group.addoption(
        "--show-secrets",
        action="store_true",
        help="show secret values in reports and failure messages instead of masking them",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    try:
        options = parse_options(vars(config.option))
        spec = lookup(options.model)
    except OptionError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[RUN_OPTIONS] = options
    config.stash[MODEL_SPEC] = spec


@pytest.fixture(scope="session")
def run_options(pytestconfig: pytest.Config) -> RunOptions:
    """The validated command-line choices of this run."""
    return pytestconfig.stash[RUN_OPTIONS]


@pytest.fixture(scope="session")
def model_spec(pytestconfig: pytest.Config) -> ModelSpec:
    """What --model resolved to; `leakbench.models.locate_weights` finds its weights."""
    return pytestconfig.stash[MODEL_SPEC]
