"""Decoys: values drawn by the generator that made the secrets, of the same owner type and kind,
never written into any text. A secret's exposure (leakbench.exposure) is its rank among them.

cases/decoys.json holds ``{"person": {kind: [value, ...]}, "org": {...}}``, written by
scripts/generate_cases.py beside the forget and holdout sets. A sample's decoys are those of its
owner's type and its kind: the generated owners' ids say their type (``person-0001``,
``org-0001``); a user case's owner is read as a person unless only organisations have decoys of
its kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from leakbench.cases.errors import CaseFileError
from leakbench.cases.files import DECOYS_FILE, display_path
from leakbench.cases.samples import KINDS, Sample

OWNER_TYPES = ("person", "org")


def dumps_decoys(pools: Mapping[str, Mapping[str, list[str]]]) -> str:
    """The text of a decoys file; the same pools give the same text."""
    return json.dumps(pools, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Decoys:
    pools: Mapping[str, Mapping[str, tuple[str, ...]]]  # owner type -> kind -> values

    @classmethod
    def load(cls, cases_dir: Path, count: int | None = None) -> Decoys:
        """The decoys of `cases_dir`, the first `count` of each pool (None: all); a missing or
        malformed file, or a pool with fewer than `count`, raises `CaseFileError`."""
        path = cases_dir / DECOYS_FILE
        where = display_path(path)
        if not path.is_file():
            raise CaseFileError(where, "missing: exposure ranks each secret among decoys; "
                                "scripts/generate_cases.py --write writes them beside "
                                "forget.jsonl, or leave exposure out of --metrics")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CaseFileError(where, f"not UTF-8 JSON: {err}") from None
        if not isinstance(data, dict) or not data or set(data) - set(OWNER_TYPES):
            raise CaseFileError(where, "must be an object whose keys are owner types "
                                f"({', '.join(OWNER_TYPES)})")
        pools: dict[str, dict[str, tuple[str, ...]]] = {}
        for owner_type, kinds in data.items():
            if not isinstance(kinds, dict):
                raise CaseFileError(where, "must map each kind to a list of values",
                                    record=owner_type)
            for kind, values in kinds.items():
                if kind not in KINDS:
                    raise CaseFileError(where, f"unknown kind; valid: {', '.join(KINDS)}",
                                        record=owner_type, field=kind)
                if (not isinstance(values, list) or not values
                        or not all(isinstance(v, str) and v for v in values)):
                    raise CaseFileError(where, "must be a non-empty list of non-empty strings",
                                        record=owner_type, field=kind)
                if count is not None and len(values) < count:
                    raise CaseFileError(where, f"has {len(values)} decoys, fewer than --decoys="
                                        f"{count}; choose at most {len(values)}",
                                        record=owner_type, field=kind)
            pools[owner_type] = {kind: tuple(values[:count]) for kind, values in kinds.items()}
        return cls(pools)

    def of(self, sample: Sample) -> tuple[str, ...]:
        """The decoys of `sample` (module docstring), its own secret left out should a user's
        case hold one of them; KeyError names a kind without any."""
        owner_type = "org" if sample.owner.startswith("org-") else "person"
        for pool in (self.pools.get(owner_type, {}), *self.pools.values()):
            if sample.kind in pool:
                return tuple(value for value in pool[sample.kind] if value != sample.secret)
        raise KeyError(f"no decoys of kind {sample.kind!r} in {DECOYS_FILE}")
