"""Sequential deletion requests (--requests=K): the planted owners forgotten in K requests, one
after another, each applied to the model the previous one left (MUSE's "sustainability").

A service that honours deletion requests unlearns each as it comes, never all at once. The
owners of the planted forget set are split into K requests of nearly equal size: whole owners,
shuffled with a fixed seed from their sorted ids, so that the split depends on the set of owners
alone. Request i unlearns its owners' samples from the variant after request i-1 (the planted
model before the first) with the algorithm's own settings (leakbench.unlearn.build_variant's
`after`). The variant after the last request is the algorithm's variant of the run: every
regular test and gate judges the model as it stands once every request is served. The variants
after the earlier requests have names of their own, `request_name` ("kl#2"), under which their
requests and answers travel through the run as attacked variants' do; their tests ask each of
them the probes of every owner deleted so far, and the capability probe.
"""

from __future__ import annotations

import random

from leakbench.cases import Sample

SEPARATOR = "#"  # in no algorithm's or attack's name (identifiers), nor an attacked name's "@"
SEED = 0


def request_name(algorithm: str, number: int) -> str:
    """The name of `algorithm`'s variant after request `number` (1-based) of an earlier one."""
    return f"{algorithm}{SEPARATOR}{number}"


def split_request_name(name: str) -> tuple[str, int] | None:
    """(algorithm, request number) of `request_name`'s result; None for any other name."""
    algorithm, separator, number = name.partition(SEPARATOR)
    return (algorithm, int(number)) if separator and number.isdigit() else None


def deletion_requests(forget: list[Sample], count: int) -> list[list[Sample]]:
    """The forget samples in `count` requests, disjoint by owner, each in the order of
    `forget`; the first requests take one owner more where they do not divide evenly."""
    owners = sorted({s.owner for s in forget})
    if not 1 <= count <= len(owners):
        raise ValueError(f"--requests={count}: the planted forget set has {len(owners)} owners; "
                         f"choose between 1 and {len(owners)}")
    random.Random(SEED).shuffle(owners)
    size, extra = divmod(len(owners), count)
    request_of, start = {}, 0
    for number in range(count):
        end = start + size + (number < extra)
        request_of.update({owner: number for owner in owners[start:end]})
        start = end
    return [[s for s in forget if request_of[s.owner] == number] for number in range(count)]


def deleted_owners(requests: list[list[Sample]], number: int) -> frozenset[str]:
    """The owners deleted once requests 1..`number` are served."""
    return frozenset(s.owner for request in requests[:number] for s in request)
