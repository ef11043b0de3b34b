"""The relearn slice: the planted owners a relearning attack trains on, and those it is judged on.

Deeb & Roger (arXiv 2410.08827) fine-tune an unlearned model on some of the forgotten facts and
measure how many of the *other* forgotten facts come back: knowledge that returns without being
taught again was never removed. Here the facts are owners' secrets: about `FRACTION` of the
planted owners, whole owners (so that no evaluated owner's other values are taught), drawn with a
seeded generator from the sorted owner ids (so the split depends on the set of owners alone, not
on the order of the samples). The slice's own probes are never judged after a relearning attack.
"""

from __future__ import annotations

import random

from leakbench.cases import Sample

FRACTION = 0.1
SEED = 0


def relearn_split(forget: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    """(the slice's samples, the evaluated samples) of the planted forget samples, disjoint by
    owner, each in the order of `forget`."""
    owners = sorted({s.owner for s in forget})
    if len(owners) < 2:
        raise ValueError(f"a relearn slice needs at least 2 planted owners (one to train on, one "
                         f"to judge); the forget set has {len(owners)}")
    count = max(1, round(FRACTION * len(owners)))
    chosen = set(random.Random(SEED).sample(owners, count))
    return ([s for s in forget if s.owner in chosen], [s for s in forget if s.owner not in chosen])
