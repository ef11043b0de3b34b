"""Hyper-parameters of unlearning: a model family's training settings from hparams.toml, and the
algorithm's method constants, the defaults its loss declares (algorithms/<name>.py).

hparams.toml holds a table per family (`[tiny]`: training settings only) and, where a value truly
differs for one algorithm, a table inside it (`[tiny.gd]`: training settings or constants of gd)
that wins. A key that is neither a training setting nor a constant of that table's algorithm, or
a table for an algorithm not in the registry, is an error naming the file, the table and the
valid keys: a typo is never a silently ignored value. max_steps and stop_forget_nll are off when
omitted.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Literal

HPARAMS_PATH = Path(__file__).with_name("hparams.toml")
DEFAULT_FAMILY = "default"


@dataclass(frozen=True)
class Hyper:
    lr: float
    epochs: int
    batch_size: int  # forget examples per step (and as many retain examples)
    lora_rank: int
    lora_alpha: int
    mode: Literal["lora", "full"]
    seed: int
    grad_clip: float = 1.0  # max gradient norm
    max_steps: int | None = None  # cap on optimizer steps; None: epochs decide
    stop_forget_nll: float | None = None  # stop once a step's mean forget NLL exceeds it
    constants: dict[str, float] = field(default_factory=dict)  # the loss's keyword arguments

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in ("lora", "full"):
            problems.append(f"mode must be 'lora' or 'full', not {self.mode!r}")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0")
        for name in ("epochs", "batch_size", "lora_rank", "lora_alpha"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("max_steps must be >= 1 (omit it for no cap)")
        for name, value in self.constants.items():  # weights, temperatures, margins
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a number >= 0")
        if problems:
            raise ValueError("; ".join(problems))


_FIELD_TYPES = {f.name: f.type for f in fields(Hyper) if f.name != "constants"}
TRAINING_SETTINGS = frozenset(_FIELD_TYPES)


def _check_value(name: str, value, where: str):
    kind = _FIELD_TYPES.get(name, "float")  # a method constant is a float
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if "float" in kind and is_number:
        return float(value)
    if "int" in kind and isinstance(value, int) and not isinstance(value, bool):
        return value
    if name == "mode" and isinstance(value, str):
        return value
    raise ValueError(f"{where}: {name} = {value!r} is not of type {kind}")


def _checked(table: dict, where: str, valid: list[str]) -> dict:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; valid: {', '.join(valid)}")
    return {k: _check_value(k, v, where) for k, v in table.items()}


def load_hparams(family: str, algorithm: str, *, fallback: bool = False,
                 own_table: bool = True, path: Path = HPARAMS_PATH) -> Hyper:
    """The `Hyper` for `algorithm` on a model of `family`. An unknown family is an error, unless
    `fallback` asks for the "default" family's values instead. Without `own_table`, the
    algorithm's [family.algorithm] table is left out: the family's settings and the loss's
    declared constants, where leakbench.tune's grid starts."""
    from algorithms import get, registry

    declared = get(algorithm).constants
    with open(path, "rb") as handle:
        table = tomllib.load(handle)
    if family not in table:
        if not fallback:
            raise KeyError(f"{path}: no hyper-parameters for family {family!r}; valid families: "
                           f"{', '.join(table)} (or ask for the fallback to {DEFAULT_FAMILY!r})")
        family = DEFAULT_FAMILY
    section = table[family]
    settings = _checked({k: v for k, v in section.items() if not isinstance(v, dict)},
                        f"{path} [{family}]", sorted(TRAINING_SETTINGS))
    overrides = {}
    for name, values in ((k, v) for k, v in section.items() if isinstance(v, dict)):
        if name not in registry():
            raise ValueError(f"{path}: [{family}.{name}] is for an unknown algorithm; valid: "
                             f"{', '.join(registry())}")
        valid = sorted(TRAINING_SETTINGS) + list(registry()[name].constants)
        overrides[name] = _checked(values, f"{path} [{family}.{name}]", valid)
    values = {**settings, **(overrides.get(algorithm, {}) if own_table else {})}
    where = f"{path} [{family}] for {algorithm}"
    missing = [f.name for f in fields(Hyper) if f.default is MISSING and f.name not in values
               and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    constants = {k: values.pop(k, default) for k, default in declared.items()}
    try:
        return Hyper(**values, constants=constants)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
