"""Hyper-parameters of unlearning, read from hparams.toml: a table per model family, with
per-algorithm overrides inside it (`[tiny]`, then `[tiny.kl]` wins for kl).

Every key must be a field of `Hyper` and every sub-table a registered algorithm: a typo is an
error, never a silently ignored value. max_steps and stop_forget_nll are off when omitted.
"""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Literal

HPARAMS_PATH = Path(__file__).with_name("hparams.toml")
DEFAULT_FAMILY = "default"


@dataclass(frozen=True)
class Hyper:
    lr: float
    epochs: int
    batch_size: int  # forget examples per step (and as many retain examples)
    gamma: float  # weight of the forget term
    alpha: float  # weight of the retain term
    beta: float  # NPO / SimNPO inverse temperature
    delta: float  # SimNPO margin
    lora_rank: int
    lora_alpha: int
    mode: Literal["lora", "full"]
    seed: int
    context_weight: float = 1.0  # selective: weight of descent on the secret's context
    grad_clip: float = 1.0  # max gradient norm
    max_steps: int | None = None  # cap on optimizer steps; None: epochs decide
    stop_forget_nll: float | None = None  # stop once a step's mean forget NLL exceeds it

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in ("lora", "full"):
            problems.append(f"mode must be 'lora' or 'full', not {self.mode!r}")
        for name in ("lr", "beta", "grad_clip"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0")
        for name in ("epochs", "batch_size", "lora_rank", "lora_alpha"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        for name in ("gamma", "alpha", "context_weight"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("max_steps must be >= 1 (omit it for no cap)")
        if problems:
            raise ValueError("; ".join(problems))


_FIELD_TYPES = {f.name: f.type for f in fields(Hyper)}


def _check_value(name: str, value, where: str):
    kind = _FIELD_TYPES[name]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if "float" in kind and is_number:
        return float(value)
    if "int" in kind and isinstance(value, int) and not isinstance(value, bool):
        return value
    if name == "mode" and isinstance(value, str):
        return value
    raise ValueError(f"{where}: {name} = {value!r} is not of type {kind}")


def load_hparams(family: str, algorithm: str, *, fallback: bool = False,
                 path: Path = HPARAMS_PATH) -> Hyper:
    """The `Hyper` for `algorithm` on a model of `family`. An unknown family is an error, unless
    `fallback` asks for the "default" family's values instead."""
    from algorithms import REGISTRY

    if algorithm not in REGISTRY:
        raise KeyError(f"unknown algorithm {algorithm!r}; valid: {', '.join(REGISTRY)}")
    with open(path, "rb") as handle:
        table = tomllib.load(handle)
    if family not in table:
        if not fallback:
            raise KeyError(f"{path}: no hyper-parameters for family {family!r}; valid families: "
                           f"{', '.join(table)} (or ask for the fallback to {DEFAULT_FAMILY!r})")
        family = DEFAULT_FAMILY
    section = table[family]
    values = {k: v for k, v in section.items() if not isinstance(v, dict)}
    overrides = {k: v for k, v in section.items() if isinstance(v, dict)}
    unknown_algos = sorted(set(overrides) - set(REGISTRY))
    if unknown_algos:
        raise ValueError(f"{path}: [{family}] has tables for unknown algorithms {unknown_algos}; "
                         f"valid: {', '.join(REGISTRY)}")
    values.update(overrides.get(algorithm, {}))
    where = f"{path} [{family}] for {algorithm}"
    unknown = sorted(set(values) - set(_FIELD_TYPES))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; valid: {', '.join(_FIELD_TYPES)}")
    missing = [f.name for f in fields(Hyper) if f.default is MISSING and f.name not in values]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    try:
        return Hyper(**{k: _check_value(k, v, where) for k, v in values.items()})
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
