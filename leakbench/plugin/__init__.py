"""LeakBench's pytest plugin: the options, tests, session fixtures, reports and gates of the
benchmark.

It is active only where a run collects a benchmark: `benchmark/conftest.py` declares
``pytest_plugins = ("leakbench.plugin",)`` (any directory of tests can do the same, or a run can
pass ``-p leakbench.plugin``). Installing the package adds nothing to other pytest runs of the
environment: no option, hook, fixture or output.

Split as pytest-xdist splits its plugin, one module per responsibility:

- `command_line`: the options and markers, validated once per process in `pytest_configure`;
- `collection`: the run's cases, turned into tests by `pytest_generate_tests`;
- `preparation`: the `prepared` fixture, which builds every variant and generates every
  completion the collected tests need before the first test judges one;
- `reporting`: the controller's records, the result table, the report files and the gates;
- `progress`: the stages of the run drawn on the controller's terminal as they work, and their
  times at the end (the stage table, results.json's manifest);
- `hookspecs`: the hooks a conftest.py or another plugin can implement to extend the report.
"""

pytest_plugins = (
    "leakbench.plugin.command_line",
    "leakbench.plugin.collection",
    "leakbench.plugin.preparation",
    "leakbench.plugin.reporting",
    "leakbench.plugin.progress",
)


def pytest_addhooks(pluginmanager) -> None:
    from leakbench.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)
