"""The machine a run or a measurement ran on: CPU model, its bfloat16 instructions, cores,
memory. Read from /proc where it is there; nothing heavy is imported."""

from __future__ import annotations

import contextlib
import os
import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# The CPU instructions that carry training's bfloat16 matrix products (leakbench.precision): each
# set rounds in its own order, so the same seed trains another `tiny` on a machine with another
# set (docs/RESULTS.md, "Study on `tiny`: a host with AMX").
BF16_INSTRUCTIONS = ("avx512_bf16", "amx_bf16")


def bf16_instructions() -> list[str]:
    """Those of BF16_INSTRUCTIONS the CPU has (its /proc/cpuinfo flags); [] where unknown."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [name for name in BF16_INSTRUCTIONS if name in flags]
    return []


def memory_gib() -> float | None:
    """The machine's memory (MemTotal), None where /proc/meminfo is not there."""
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20  # kB
    return None


def usable_cores() -> int:
    """The cores this process may run on (its affinity), which a container may make fewer than
    the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe() -> dict:
    memory = memory_gib()
    return {"cpu_model": cpu_model(), "bf16_instructions": bf16_instructions(),
            "usable_cores": usable_cores(),
            "memory_gib": round(memory, 1) if memory is not None else None}
