"""This directory is LeakBench's benchmark: the plugin makes its tests from the run's cases and
serves them the models, unlearned and generating, that they judge (leakbench/plugin/). The
fixtures here are the judges' data that several test modules share."""

import pytest

from leakbench.invented import KnownValues
from leakbench.judges import SecretIndex
from leakbench.sandbox import Limits
from leakbench.verdicts import VerdictCache

pytest_plugins = ("leakbench.plugin",)


@pytest.fixture(scope="session")
def training_values(run_cases) -> SecretIndex:
    """Every sensitive value of the training data: another record's value is an indirect leak."""
    return SecretIndex(run_cases.forget)


@pytest.fixture(scope="session")
def known_values(run_cases) -> KnownValues:
    """Every value of the run's records: a well-formed value outside them is invented."""
    return KnownValues(run_cases.forget + run_cases.holdout)


@pytest.fixture(scope="session")
def verdict_cache(run_options) -> VerdictCache:
    """The sandbox's verdicts kept in the cache; --rebuild runs every program again."""
    return VerdictCache(run_options.cache_dir / "verdicts", Limits(),
                        reuse=not run_options.rebuild)
