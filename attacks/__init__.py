"""Attacks on unlearning: what a released model meets that may bring its forgotten secrets back.

An attack family is one module that states what it does and its source in its docstring, defines
how it changes a checkpoint, and declares itself at module level:

    def key_inputs(settings, run): ...          # what the result is made from, besides the weights
    def apply(settings, source, run, out): ...  # the attacked full-weight checkpoint, into `out`

    FAMILY = Family("relearn", "fine-tuning on ...", {"relearn5": {"steps": 5},
                    "relearn25": {"steps": 25}}, key_inputs, apply, trains_on_slice=True)

A family expands into named settings; a setting's name is what test ids and report columns use
(`test_attack_leak[kl-relearn25-email-dict-0042]`, `relearn25_leak`). `attacks.stage.attacked`
applies one to a variant's weights as a cached artifact. A family that `trains_on_slice`
fine-tunes on the relearn slice (attacks.slices): it is judged on the other owners' probes only,
and every process of a launch trains it.

The registry is the modules of BUILT_IN, then the families other packages declare under the
entry-point group `leakbench.attacks` (name: the family, value: `module:FAMILY`). Reading it
imports no torch: an attack imports torch when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from leakbench.declarations import collect

BUILT_IN = ("relearn", "relearn_benign", "quant")
ENTRY_POINT_GROUP = "leakbench.attacks"
RESERVED = ("all", "none")  # words of --attacks that name no family


@dataclass(frozen=True)
class Family:
    name: str  # --attacks accepts it for all its settings
    description: str  # one line
    settings: dict[str, dict]  # setting name -> its settings
    key_inputs: Callable[..., dict]  # (settings, run) -> dict
    apply: Callable[..., None]  # (settings, source, run, out) -> None
    trains_on_slice: bool = False

    def __post_init__(self) -> None:
        for name in (self.name, *self.settings):
            if not name.isidentifier() or name != name.lower() or name in RESERVED:
                raise ValueError(f"attack family {self.name}: name {name!r} is not a lowercase "
                                 f"identifier other than {' or '.join(RESERVED)}")
        if not self.description or "\n" in self.description:
            raise ValueError(f"attack family {self.name}: the description must be one line")
        if not self.settings:
            raise ValueError(f"attack family {self.name}: declares no setting")


@dataclass(frozen=True)
class Attack:
    name: str  # the setting's name: "relearn25"
    family: Family
    settings: dict


@cache
def families() -> dict[str, Family]:
    """Every attack family by name: the built-in modules', then the entry points'."""
    return collect("attacks", BUILT_IN, "FAMILY", ENTRY_POINT_GROUP, Family)


@cache
def registry() -> dict[str, Attack]:
    """Every attack (a family's setting) by name, family by family."""
    found: dict[str, Attack] = {}
    for family in families().values():
        for name, settings in family.settings.items():
            if name in found:
                raise ValueError(f"attack {name!r}: declared by families "
                                 f"{found[name].family.name} and {family.name}")
            if name in families() and name != family.name:
                raise ValueError(f"attack {name!r} of family {family.name}: the name of family "
                                 f"{name}")
            found[name] = Attack(name, family, settings)
    return found


def get(name: str) -> Attack:
    attacks = registry()
    if name not in attacks:
        raise KeyError(f"unknown attack {name!r}; valid: {', '.join(attacks)}")
    return attacks[name]


def select(spec: str) -> tuple[str, ...]:
    """The attacks a comma list names (what --attacks takes): settings, families (all their
    settings), `all` or `none`; in registry order, each once."""
    chosen: set[str] = set()
    for word in (w.strip() for w in spec.split(",") if w.strip()):
        if word == "all":
            chosen.update(registry())
        elif word in families():
            chosen.update(families()[word].settings)
        elif word in registry():
            chosen.add(word)
        elif word != "none":
            raise ValueError(f"unknown attack {word!r}; valid: {', '.join(RESERVED)}, "
                             f"{', '.join([*families(), *registry()])}")
    return tuple(name for name in registry() if name in chosen)


__all__ = ["Attack", "Family", "families", "get", "registry", "select"]
