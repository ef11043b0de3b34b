"""The processes of a multi-process launch (`accelerate launch`, torchrun), as the cache sees them.

A plain process (python, pytest and its xdist workers) is no launch: `processes()` is None and
nothing here imports torch or accelerate. Under a launch of N > 1 processes (WORLD_SIZE, which
the launchers set), `processes()` is the group they form, through accelerate's PartialState.
leakbench.artifacts uses it so that process 0 alone decides, writes and renames, while the others
take its word.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol, TypeVar

T = TypeVar("T")

# Process 0 alone hashes and writes a checkpoint while the others wait for it in a collective
# call; for a 7B model (13-27 GB) that may take minutes, longer than NCCL's default of 10.
TIMEOUT = timedelta(hours=1)


class Processes(Protocol):
    is_main: bool

    def on_main(self, work: Callable[[], T]) -> T:
        """Run `work` on process 0 only and return its result on every process, which wait for
        it. If it raises, process 0 ends with the error and the launcher ends the others."""

    def end(self) -> None:
        """Leave the launch together, so that no process exits while another still talks to
        it, and destroy the process group: left alive, its threads outlive Python's shutdown,
        which may abort the process ("terminate called without an active exception"). A
        launched program calls it before it exits."""


def processes() -> Processes | None:
    """The processes of this launch, or None when this process runs alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # The first to set up accelerate's state decides how the processes join: on CPUs only when
    # told so (ACCELERATE_USE_CPU, which Accelerator() reads too), else they would stay apart.
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU")
    return _Accelerated(PartialState(cpu=cpu, timeout=TIMEOUT))


class _Accelerated:
    def __init__(self, state) -> None:
        self.state = state
        self.is_main = state.is_main_process

    def on_main(self, work: Callable[[], T]) -> T:
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([work() if self.is_main else None], from_process=0)[0]

    def end(self) -> None:
        self.state.wait_for_everyone()
        self.state.destroy_process_group()
