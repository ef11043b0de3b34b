"""This directory is LeakBench's benchmark: the plugin makes its tests from the run's cases and
serves them the models, unlearned and generating, that they judge (leakbench/plugin/)."""

pytest_plugins = ("leakbench.plugin",)
