"""The capability probe: small generated Python function tasks, checked by executing asserts.

HumanEval is far beyond a model of a few million parameters, so the embedded model `tiny` is also
measured on tasks of the same shape (signature + docstring -> body) that it can learn: each task
family maps a docstring pattern to a body pattern, instantiated with constants and names. The
held-out split holds out whole (family, constant) pairs, so passing a held-out task means composing
what was learned (the pattern from other constants, the constant from other families), not
recalling a seen task. Held-out tasks are never trained on; they are the `functional` probe.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from leakbench import functional

HELDOUT_FRACTION = 0.2
CONSTANTS = range(2, 20)


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str  # signature + docstring, ending with a newline (a token boundary)
    solution: str  # the body, indented
    tests: str  # asserts that call entry_point
    entry_point: str

    @property
    def text(self) -> str:
        """The training text: the whole function."""
        return self.prompt + self.solution


@dataclass(frozen=True)
class Family:
    name: str
    function_names: tuple[str, ...]
    arg: str  # "int" | "list" | "str"
    doc: str  # format string with {a} (the argument name) and {k}
    body: str  # format string with {a} and {k}
    reference: Callable  # reference(value, k) -> expected result


_INT_ARGS = ("x", "n", "num", "value")
_LIST_ARGS = ("xs", "nums", "items", "values")
_STR_ARGS = ("s", "text", "word", "name")

FAMILIES = (
    Family("add", ("add_const", "plus", "increment_by"), "int",
           "Return {a} plus {k}.", "return {a} + {k}", lambda v, k: v + k),
    Family("sub", ("sub_const", "minus", "decrement_by"), "int",
           "Return {a} minus {k}.", "return {a} - {k}", lambda v, k: v - k),
    Family("mul", ("mul_const", "times", "scale"), "int",
           "Return {a} times {k}.", "return {a} * {k}", lambda v, k: v * k),
    Family("gt", ("is_greater", "above", "exceeds"), "int",
           "Return True if {a} is greater than {k}.", "return {a} > {k}", lambda v, k: v > k),
    Family("divisible", ("is_divisible", "divides", "is_multiple"), "int",
           "Return True if {a} is divisible by {k}.", "return {a} % {k} == 0",
           lambda v, k: v % k == 0),
    Family("mod", ("remainder", "modulo", "rest"), "int",
           "Return the remainder of {a} divided by {k}.", "return {a} % {k}", lambda v, k: v % k),
    Family("filter_gt", ("keep_greater", "filter_above", "select_large"), "list",
           "Return the elements of {a} that are greater than {k}.",
           "return [v for v in {a} if v > {k}]", lambda v, k: [x for x in v if x > k]),
    Family("filter_lt", ("keep_smaller", "filter_below", "select_small"), "list",
           "Return the elements of {a} that are less than {k}.",
           "return [v for v in {a} if v < {k}]", lambda v, k: [x for x in v if x < k]),
    Family("map_add", ("shift_all", "add_to_each", "offset"), "list",
           "Return each element of {a} plus {k}.",
           "return [v + {k} for v in {a}]", lambda v, k: [x + k for x in v]),
    Family("map_mul", ("scale_all", "multiply_each", "stretch"), "list",
           "Return each element of {a} times {k}.",
           "return [v * {k} for v in {a}]", lambda v, k: [x * k for x in v]),
    Family("count", ("count_value", "occurrences", "how_many"), "list",
           "Return how many elements of {a} are equal to {k}.",
           "return {a}.count({k})", lambda v, k: v.count(k)),
    Family("sum_plus", ("total_plus", "sum_and_add", "grand_total"), "list",
           "Return the sum of {a} plus {k}.", "return sum({a}) + {k}", lambda v, k: sum(v) + k),
    Family("max_or", ("largest_or", "max_with_floor", "peak"), "list",
           "Return the largest of {k} and the elements of {a}.",
           "return max([{k}] + {a})", lambda v, k: max([k] + v)),
    Family("prefix", ("head", "first_chars", "truncate"), "str",
           "Return the first {k} characters of {a}.", "return {a}[:{k}]", lambda v, k: v[:k]),
    Family("suffix", ("tail", "last_chars", "ending"), "str",
           "Return {a} without its first {k} characters.", "return {a}[{k}:]", lambda v, k: v[k:]),
    Family("repeat", ("repeat", "echo", "duplicate"), "str",
           "Return {a} repeated {k} times.", "return {a} * {k}", lambda v, k: v * k),
    Family("longer", ("is_long", "longer_than", "too_long"), "str",
           "Return True if {a} has more than {k} characters.",
           "return len({a}) > {k}", lambda v, k: len(v) > k),
)

_ARGS = {"int": _INT_ARGS, "list": _LIST_ARGS, "str": _STR_ARGS}


def is_heldout(family: Family, k: int) -> bool:
    """A fixed, seed-independent split of (family, constant) pairs."""
    digest = hashlib.sha256(f"{family.name}:{k}".encode()).digest()
    return digest[0] < 256 * HELDOUT_FRACTION


def _inputs(kind: str, rng: random.Random) -> list:
    if kind == "int":
        return [rng.randint(-30, 60) for _ in range(3)]
    if kind == "list":
        return [[rng.randint(0, 25) for _ in range(rng.randint(3, 7))] for _ in range(3)]
    words = ("alpha", "benchmark", "code", "leak", "probe", "sandbox", "unlearning", "zebra")
    return [rng.choice(words) + rng.choice(words) for _ in range(3)]


def make_task(family: Family, k: int, name: str, arg: str, rng: random.Random) -> Task:
    doc = family.doc.format(a=arg, k=k)
    prompt = f'def {name}({arg}):\n    """{doc}"""\n'
    solution = f"    {family.body.format(a=arg, k=k)}\n"
    tests = "".join(
        f"assert {name}({value!r}) == {family.reference(value, k)!r}\n"
        for value in _inputs(family.arg, rng)
    )
    return Task(f"{family.name}-{k}-{name}-{arg}", prompt, solution, tests, name)


def all_tasks(heldout: bool, seed: int = 0) -> list[Task]:
    """Every (family, constant, function name, argument name) instance of one split, in a fixed
    order."""
    rng = random.Random(seed)
    tasks = []
    for family in FAMILIES:
        for k in CONSTANTS:
            if is_heldout(family, k) != heldout:
                continue
            for function_name in family.function_names:
                for arg in _ARGS[family.arg]:
                    tasks.append(make_task(family, k, function_name, arg, rng))
    return tasks


def probe_tasks(seed: int = 0) -> list[Task]:
    """The capability probe: one held-out task per (family, constant, function name), the argument
    name drawn with a fixed seed, so that no two probes differ only in a variable's name."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[Task]] = {}
    for task in all_tasks(heldout=True):
        family, k, name, _ = task.task_id.split("-")
        groups.setdefault((f"{family}-{k}", name), []).append(task)
    return [rng.choice(tasks) for tasks in groups.values()]


def program(task: Task, completion: str) -> str:
    """The program the sandbox runs: the task's asserts against the function the prompt and the
    model's body define (`leakbench.functional`: the asserts run apart from the body)."""
    return functional.program(task.prompt, task.prompt + completion, task.tests, task.entry_point)
