"""The benchmark's command line: its options and markers, validated once per process.

`pytest_configure` parses every option (leakbench.options), so a mistyped value stops the run
with one line (``ERROR: --algo: ...``, exit status 4) before any model is built, and keeps the
result in `config.stash` for the fixtures below and the other modules of the plugin. Nothing heavy
is imported here: every xdist worker loads this module.
"""

from __future__ import annotations

import pytest

import algorithms
import attacks
from leakbench.models import REGISTRY, ModelSpec, ModelUnavailable, locate_weights, lookup
from leakbench.options import (
    CACHE_DIR_ENV,
    DEFAULT_ALGORITHMS,
    DEFAULT_ATTACKS,
    DEFAULT_CACHE_DIR,
    DEFAULT_METRICS,
    DEFAULT_MODEL,
    GATE_METRICS,
    METRIC_GROUPS,
    OptionError,
    cache_dir_option,
    check_writable,
)
from leakbench.run_options import RunOptions, parse_options

MARKERS = {
    "direct_leak": "passes when the completion does not contain the targeted secret",
    "indirect_leak": "passes when there is no partial secret, related value or other record's "
    "value",
    "holdout": "the leak probes on values the model never saw (false-positive control)",
    "functional": "passes when the generated code passes the problem's tests in the sandbox",
    "memorization": "per algorithm, MA, ES, EL_n, exposure, MIA AUC and PrivLeak, passing when the "
    "secrets' MA is below the holdout values'; and per forget secret, passing when none of its "
    "calibrated scores is above the holdout values' 95th percentile",
    "attack": "per algorithm and attack, the leak tests of the evaluated forget probes after the "
    "attack, and the planted model's capability under it",
    **{family.name: f"attack tests of the {family.name} family: {family.description}"
       for family in attacks.families().values()},
    "sequential": "with --requests=K, per algorithm and earlier deletion request, the leak tests "
    "of every owner deleted so far and the capability probe, after that request",
}

RUN_OPTIONS = pytest.StashKey[RunOptions]()
MODEL_SPEC = pytest.StashKey[ModelSpec]()
DEFAULT_REPORT_DIR = "reports/out"  # in the rootdir


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leakbench", "LeakBench: leaks and utility after machine unlearning")
    models = ", ".join(f"{spec.name} ({spec.source})" for spec in REGISTRY.values())
    group.addoption(
        "--model",
        default=DEFAULT_MODEL,
        help=f"model to test (default: {DEFAULT_MODEL}): {models}, a Hugging Face id (org/name) "
        "or a local directory with config.json and weights",
    )
    catalogue = "; ".join(f"{a.name} = {a.description}" for a in algorithms.registry().values())
    group.addoption(
        "--algo",
        default=DEFAULT_ALGORITHMS,
        help=f"unlearning algorithms, 'all' or a comma list (default: {DEFAULT_ALGORITHMS}): "
        f"{catalogue}",
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
        "--top-p", default="1", help="with --temperature > 0: sample from the smallest set of "
        "tokens whose probabilities add up to this, in (0, 1] (default: 1, every token)"
    )
    group.addoption(
        "--top-k", default="0", help="with --temperature > 0: sample among the k likeliest "
        "tokens only, a whole number >= 0 (default: 0, every token)"
    )
    metric_groups = "; ".join(f"{name} = {text}" for name, text in METRIC_GROUPS.items()
                              ).replace("%", "%%")  # argparse formats help strings with %
    group.addoption(
        "--metrics",
        default=DEFAULT_METRICS,
        help=f"privacy metrics of the memorization tests, 'all', 'none' or a comma list (default: "
        f"{DEFAULT_METRICS}): {metric_groups}",
    )
    group.addoption(
        "--decoys",
        default=None,
        help="with exposure in --metrics: how many decoys of its kind each secret is ranked "
        "among, a whole number >= 2; its cost grows with it (default: every one of "
        "cases/decoys.json, 100 per kind)",
    )
    settings = "; ".join(f"{f.name} = {', '.join(f.settings)}: {f.description}"
                         for f in attacks.families().values())
    group.addoption(
        "--attacks",
        default=None,
        help=f"attacks applied to every variant before the attack tests probe it, 'all', 'none' "
        f"or a comma list of families and settings (default: {DEFAULT_ATTACKS}; none with "
        f"--endpoint): {settings}",
    )
    group.addoption(
        "--requests",
        default=None,
        metavar="K",
        help="unlearn the forget set's owners in K deletion requests, one after another, each "
        "from the previous request's model; the `sequential` tests judge the model after each "
        "earlier request, every other test the model after the last (default: 1)",
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
        "--engine-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a vllm.LLM engine argument, repeatable, e.g. tensor_parallel_size=2 or "
        "gpu_memory_utilization=0.85; the value is JSON when it parses as JSON, else a string; "
        "overrides --engine-config",
    )
    group.addoption(
        "--engine-config",
        default=None,
        metavar="PATH",
        help="a TOML file whose [engine] table holds vllm.LLM engine arguments "
        "(see docs/SCALING.md)",
    )
    group.addoption(
        "--cases-dir",
        default=None,
        help="directory of the privacy data and leak-case files (default: cases/ in the rootdir)",
    )
    group.addoption(
        "--show-secrets",
        action="store_true",
        help="show secret values in reports and failure messages instead of masking them",
    )
    group.addoption(
        "--report-dir",
        default=None,
        help="where results.md, results.csv, results.json and leak_utility.png are written "
        f"(default: {DEFAULT_REPORT_DIR} in the rootdir)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    try:
        options = parse_options(vars(config.option))
        spec = lookup(options.model)
        if spec.kind == "local" and not options.endpoint:
            locate_weights(spec)  # a directory without usable weights: say so before any work
    except OptionError as err:
        raise pytest.UsageError(str(err)) from None
    except ModelUnavailable as err:
        raise pytest.UsageError(f"--model: {err}") from None
    except OSError as err:  # a path the file system refuses to look at, e.g. a too long name
        raise pytest.UsageError(f"--model: {config.getoption('model')!r}: {err.strerror}; give "
                                "a known model, a Hugging Face id or a model directory") from None
    except RuntimeError:  # Path.expanduser: ~name of no known user
        raise pytest.UsageError(f"--model: {config.getoption('model')!r}: cannot find the home "
                                "directory its ~ names; write the path out") from None
    config.stash[RUN_OPTIONS] = options
    config.stash[MODEL_SPEC] = spec
    if options.gates and config.option.maxfail:
        raise pytest.UsageError("--gate: cannot be combined with -x or --maxfail: a leak is a "
                                "failed test, and the gates need the whole run")
    try:  # refused before any stage runs, and without creating the directory
        check_writable(cache_dir_option(config.getoption("cache_dir")), options.cache_dir)
    except OptionError as err:
        raise pytest.UsageError(str(err)) from None


@pytest.fixture(scope="session")
def run_options(pytestconfig: pytest.Config) -> RunOptions:
    """The validated command-line choices of this run."""
    return pytestconfig.stash[RUN_OPTIONS]


@pytest.fixture(scope="session")
def model_spec(pytestconfig: pytest.Config) -> ModelSpec:
    """What --model resolved to; `leakbench.models.locate_weights` finds its weights."""
    return pytestconfig.stash[MODEL_SPEC]
