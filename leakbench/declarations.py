"""Catalogues made of declarations: LeakBench's own modules first, then other packages'.

The algorithm and the attack registries are read the same way. Each built-in module of a package
declares one object under a fixed attribute name (`ALGORITHM`, `FAMILY`) whose `name` is the
module's; another installed package adds its own through an entry point of a group
(`leakbench.algorithms`, `leakbench.attacks`) whose value names such an object
(``halfga = "my_package.halfga:ALGORITHM"``). Every mismatch is a one-line error naming the
module or the entry point.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points


def collect(package: str, modules: Iterable[str], attribute: str, group: str, kind: type
            ) -> dict[str, object]:
    """The declared objects by name: `package`'s `modules` in their order, then `group`'s entry
    points; each a `kind` with a `name` no other declaration has."""
    found: dict[str, object] = {}
    for module in modules:
        declared = getattr(importlib.import_module(f"{package}.{module}"), attribute)
        if declared.name != module:
            raise ValueError(f"{package}/{module}.py declares {declared.name!r}, not {module!r}")
        found[module] = declared
    for point in entry_points(group=group):
        where = f"entry point {point.name} = {point.value} ({group})"
        try:
            declared = point.load()
        except ImportError as error:
            raise ImportError(f"{where}: {error}") from error
        if not isinstance(declared, kind):
            raise TypeError(f"{where}: not an {kind.__module__}.{kind.__name__} but "
                            f"{type(declared).__name__}")
        if declared.name != point.name:
            raise ValueError(f"{where}: declares {declared.name!r}; it must declare "
                             f"{point.name!r}")
        if declared.name in found:
            raise ValueError(f"{where}: {declared.name!r} is already registered")
        found[declared.name] = declared
    return found
