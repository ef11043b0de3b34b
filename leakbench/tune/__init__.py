"""Tuning: every unlearning algorithm given the same budget of trials over its own grid, chosen
by one rule fixed in advance, on a validation split no reported test sees.

- leakbench.validation: which planted owners and capability tasks are for tuning;
- leakbench.tune.trials: the grid, the trials drawn from it and the rule that chooses;
- leakbench.tune.measure: each trial unlearned (a cached artifact) and judged in one engine pass;
- leakbench.tune.hparams_file: the chosen settings in algorithms/hparams.toml, with provenance;
- ``python -m leakbench.tune`` (__main__): the command, its tables and its Pareto chart.
"""
