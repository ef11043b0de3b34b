"""Unlearning algorithms: one module per algorithm, this registry, one shared loop (loop.py).

An algorithm is one module that states its loss as a formula (and its source) in its docstring,
defines the loss, and declares itself at module level:

    def loss(batch_forget, batch_retain, model, reference, *, gamma=1.0):
        ...
        return total, logged

    ALGORITHM = Algorithm("ga", "gradient ascent on the forget set", loss)

`total` is the scalar tensor to minimize and `logged` holds plain floats: "forget" (the mean NLL
of the forget tokens the algorithm ascends on) and "retain" (the mean retain NLL, None when the
algorithm takes no retain batch or alpha is 0), plus the algorithm's own terms. The loss's
keyword-only parameters are its method constants, their defaults the values every model family
uses unless algorithms/hparams.toml overrides one in a [family.algorithm] table.

`search` names the constants leakbench.tune searches besides the learning rate and the stop
(None: the algorithm is not tuned). Two entries have no loss: `none` (the planted model,
unchanged: the baseline) and `retrain` (the pipeline plants again without the forget set: the
target an unlearned model should match).

The registry is the modules of BUILT_IN, in the order of the result table, then the algorithms
other packages declare under the entry-point group `leakbench.algorithms` (docs/DESIGN.md,
"Adding an algorithm"). Reading it imports no torch: a loss imports torch when it runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from algorithms.hparams import TRAINING_SETTINGS, Hyper, load_hparams
from leakbench.declarations import collect

BUILT_IN = ("none", "ga", "gd", "kl", "npo", "simnpo", "selective", "kl_far", "retrain")
ENTRY_POINT_GROUP = "leakbench.algorithms"
LOSS_ARGUMENTS = ("batch_forget", "batch_retain", "model", "reference")


@dataclass(frozen=True)
class Algorithm:
    name: str  # its --algo name
    description: str  # one line: --algo's help and the README's catalogue
    loss: Callable[..., tuple] | None  # None for `none` and `retrain`
    needs_reference: bool = False  # a frozen copy of the model before unlearning
    needs_retain: bool = False  # retain batches paired with the forget batches
    kind: Literal["loss", "identity", "retrain"] = "loss"
    # What leakbench.tune searches besides the learning rate and the stop: some of the method
    # constants; None where the algorithm is not tuned (a setting chosen for another aim).
    search: tuple[str, ...] | None = ()
    constants: dict[str, float] = field(init=False)  # the loss's keyword-only parameters

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower() or self.name == "all":
            raise ValueError(f"algorithm name {self.name!r}: not a lowercase identifier or 'all'")
        if not self.description or "\n" in self.description:
            raise ValueError(f"algorithm {self.name}: the description must be one line")
        if (self.loss is None) != (self.kind != "loss"):
            raise ValueError(f"algorithm {self.name}: kind {self.kind!r} "
                             f"{'needs' if self.kind == 'loss' else 'has no'} loss")
        object.__setattr__(self, "constants", _constants_of(self.name, self.loss))
        unknown = sorted(set(self.search or ()) - set(self.constants))
        if unknown:
            raise ValueError(f"algorithm {self.name}: searches {unknown}, which are not constants "
                             f"of its loss; valid: {', '.join(self.constants) or 'none'}")

    @property
    def tuned(self) -> bool:
        """Whether leakbench.tune chooses this algorithm's settings."""
        return self.kind == "loss" and self.search is not None


def _constants_of(name: str, loss: Callable | None) -> dict[str, float]:
    """The loss's keyword-only parameters and their defaults, checked: every other parameter is
    one of LOSS_ARGUMENTS in order, and every constant has a number as its default."""
    if loss is None:
        return {}
    parameters = inspect.signature(loss).parameters.values()
    positional = tuple(p.name for p in parameters if p.kind is not p.KEYWORD_ONLY)
    if positional != LOSS_ARGUMENTS:
        raise ValueError(f"algorithm {name}: loss{positional} must take "
                         f"({', '.join(LOSS_ARGUMENTS)}, *, constants...)")
    constants = {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}
    for constant, default in constants.items():
        if constant in TRAINING_SETTINGS:
            raise ValueError(f"algorithm {name}: constant {constant!r} is a training setting")
        if not isinstance(default, (int, float)) or isinstance(default, bool):
            raise ValueError(f"algorithm {name}: constant {constant!r} needs a number as its "
                             f"default, not {default!r}")
    return {constant: float(default) for constant, default in constants.items()}


@cache
def registry() -> dict[str, Algorithm]:
    """Every algorithm by name: the built-in modules', then the entry points' (each with a loss)."""
    found = collect("algorithms", BUILT_IN, "ALGORITHM", ENTRY_POINT_GROUP, Algorithm)
    for name in set(found) - set(BUILT_IN):
        if found[name].kind != "loss":
            raise ValueError(f"entry point {name} ({ENTRY_POINT_GROUP}): declares an algorithm "
                             f"of kind {found[name].kind!r}; it must declare one with a loss")
    return found


def get(name: str) -> Algorithm:
    algorithms = registry()
    if name not in algorithms:
        raise KeyError(f"unknown algorithm {name!r}; valid: {', '.join(algorithms)}")
    return algorithms[name]


__all__ = ["Algorithm", "Hyper", "get", "load_hparams", "registry"]
