"""The CPU the vLLM engine's processes spend while it generates, per way of running the engine.

    python bench/engine_polling.py [--model tiny] [--repeat 3] [--cache-dir DIR] [--docs FILE]

On the CPU, vLLM 0.32 runs an engine in three processes by default: the process that builds
`vllm.LLM` (here `leakbench.serving`'s engine process), its EngineCore (the scheduler) and one
model worker (MultiprocExecutor; the CPU platform turns the single-process executor "uni" into
"mp" while V1 multiprocessing is on). The EngineCore waits for each step's result on a
shared-memory queue, and a reader that read within the last second spins on it
(`sched_yield`), so during generation it keeps a core busy; vLLM's automatic thread binding
leaves it a core by binding the worker's OpenMP threads to the others (one of two here). vLLM
0.32 has no setting that makes that wait sleep. The ways compared:

- multiprocess: vLLM's default as above (VLLM_ENABLE_V1_MULTIPROCESSING=1);
- worker on all cores: the same, the worker's OpenMP threads bound to every core this process
  may use (VLLM_CPU_OMP_THREADS_BIND), beside the spinning EngineCore;
- in-process: VLLM_ENABLE_V1_MULTIPROCESSING=0, which keeps the executor "uni": the EngineCore
  and the model run in the engine process itself, one process, no queue to poll.

The job is the one a benchmark run gives the engine for the planted model (variant `none`) of
--model: the requests of bench/generation.py (leak probes, capability probe, HumanEval; greedy,
one sample), found in or built into the cache. Each run is a fresh engine process started as
`leakbench.serving.run` starts it (its own process group, ended by `serving._kill_group`), with
the way's environment; it runs `leakbench.serving`'s own code, through this script's hidden
--engine mode, which records the CPU seconds (user + system, from psutil) of each process of its
tree when the engine is ready and just before and after its `LLM.generate` call. The ways
alternate, the first one rotating each repeat.

Per way, the median over the repeats of: start (the spawn until `vllm.LLM` was built), generate
(the `LLM.generate` call), the end of the process group, total (the spawn until the group was
gone), generated tokens (vLLM's token ids) per second of generate, the CPU seconds during generate
of the engine process, the EngineCore, the worker and any other process of the tree, and those of
all of the engine's processes over its whole life (its process group, sampled from outside).
Completions are compared with the first way's, request by request. Writes the "Engine polling"
section of docs/PERFORMANCE.md (--docs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psutil
from generation import ROOT, VARIANT, benchmark_requests, load_data, planted_variant
from host import OtherLoad, description

from leakbench import models, pipeline, serving
from leakbench.docs_section import write_section
from leakbench.options import parse_cache_dir
from leakbench.schema import Request

PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
SECTION = "Engine polling"
ROLES = ("engine process", "EngineCore", "worker", "other")
SAMPLE_S = 0.2  # how often `GroupSampler` reads the CPU times of an engine's process group
ALL_CORES = ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class Way:
    """One way of running the engine: the environment its process gets over this one's."""

    name: str
    env: dict[str, str]


WAYS = (
    Way("multiprocess (vLLM's default)", {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"}),
    Way("worker on all cores", {"VLLM_ENABLE_V1_MULTIPROCESSING": "1",
                                "VLLM_CPU_OMP_THREADS_BIND": ALL_CORES}),
    Way("in-process", {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}),
)


@dataclass
class Run:
    """One engine process of one way. CPU seconds are per role (ROLES)."""

    start: float
    generate: float
    group_end: float
    total: float
    tokens: int
    generate_cpu: dict[str, float]  # during the `LLM.generate` call
    life_cpu: dict[str, float]  # from the spawn until the process group was gone
    texts: list[list[str]]  # per request, its completions


class GroupSampler(threading.Thread):
    """Reads, every SAMPLE_S seconds until stopped, the CPU seconds of each process in the process
    group `pgid`; `last` keeps each one's latest [title, seconds]. A process that ends between two
    samples loses the CPU it used since the last one."""

    def __init__(self, pgid: int) -> None:
        super().__init__(daemon=True)
        self.pgid, self.last, self.stopped = pgid, {}, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_S):
            for process in psutil.process_iter():
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    if os.getpgid(process.pid) == self.pgid:
                        times = process.cpu_times()
                        self.last[str(process.pid)] = [" ".join(process.cmdline()),
                                                       times.user + times.system]

    def stop(self) -> dict[str, list]:
        self.stopped.set()
        self.join()
        return self.last


def run_engine(job: serving.EngineJob, way: Way, workdir: Path) -> Run:
    """One fresh engine process for `job`, run the way `serving.run` runs it, with `way`'s
    environment; measured by its --engine mode (`engine`)."""
    workdir.mkdir(parents=True)
    (workdir / "job.json").write_text(job.to_json())
    log_file = workdir / "engine.log"
    with open(log_file, "wb") as log:
        spawned = time.monotonic()
        proc = subprocess.Popen([sys.executable, __file__, "--engine", str(workdir)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **way.env})
        sampler = GroupSampler(proc.pid)  # the engine leads its own process group
        sampler.start()
        try:
            code = proc.wait()
        finally:
            exited = time.monotonic()
            serving._kill_group(proc)
            ended = time.monotonic()
            sampled = sampler.stop()
    if code != 0 or not (workdir / "out.json").exists():
        tail = log_file.read_text(errors="replace").splitlines()[-serving.LOG_TAIL_LINES:]
        raise SystemExit(f"bench/engine_polling.py: the engine ({way.name}) exited with status "
                         f"{code}:\n" + "\n".join(tail))
    marks = json.loads((workdir / "marks.json").read_text())
    answers = json.loads((workdir / "out.json").read_text())
    ready, before, after = marks["ready"], marks["generate_start"], marks["generate_end"]
    return Run(start=ready["time"] - spawned, generate=after["time"] - before["time"],
               group_end=ended - exited, total=ended - spawned, tokens=marks["tokens"],
               generate_cpu=cpu_by_role(before["cpu"], after["cpu"], proc.pid),
               life_cpu=cpu_by_role({}, sampled, proc.pid), texts=answers[VARIANT])


def role(pid: int, title: str, engine_pid: int) -> str:
    """Which of ROLES a process of the engine's tree is, by its pid and vLLM's process title."""
    if pid == engine_pid:
        return "engine process"
    if "EngineCore" in title:
        return "EngineCore"
    if "Worker" in title:
        return "worker"
    return "other"


def cpu_by_role(before: dict[str, list], after: dict[str, list], engine_pid: int
                ) -> dict[str, float]:
    """CPU seconds per role between two snapshots of an engine's processes (pid -> [title,
    seconds]); a process that is not in `before` counts from its start."""
    seconds = dict.fromkeys(ROLES, 0.0)
    for pid, (title, cpu) in after.items():
        seconds[role(int(pid), title, engine_pid)] += cpu - (before[pid][1] if pid in before else 0)
    return seconds


def tree_cpu() -> dict[str, list]:
    """This process and each of its descendants: pid -> [process title, user + system CPU s]."""
    found = {}
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            found[str(process.pid)] = [" ".join(process.cmdline()), times.user + times.system]
    return found


def engine(workdir: Path) -> NoReturn:
    """The engine process of `run_engine`: `leakbench.serving`'s own, whose `LLM.generate` call
    is wrapped to snapshot the process tree's CPU (`tree_cpu`) when the engine is ready, before
    and after the call, written to marks.json with the generated token count. `serving.main`
    ends the process once the answers are written."""
    generate_requests = serving._generate
    marks = {}

    def snapshot() -> dict:
        return {"time": time.monotonic(), "cpu": tree_cpu()}

    def measured_generate_requests(llm, requests, loras):
        marks["ready"] = snapshot()
        generate = llm.generate

        def measured_generate(*args, **kwargs):
            marks["generate_start"] = snapshot()
            outputs = generate(*args, **kwargs)
            marks["generate_end"] = snapshot()
            marks["tokens"] = sum(len(c.token_ids) for o in outputs for c in o.outputs)
            (workdir / "marks.json").write_text(json.dumps(marks))
            return outputs

        llm.generate = measured_generate
        return generate_requests(llm, requests, loras)

    serving._generate = measured_generate_requests
    serving.main([str(workdir / "job.json"), str(workdir / "out.json")])
    raise SystemExit("leakbench.serving returned instead of ending its process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""))
    parser.add_argument("--docs", type=Path, default=PERFORMANCE_MD,
                        help="the Markdown file whose section to write")
    parser.add_argument("--engine", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        engine(args.engine)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    host, load = description(), OtherLoad()
    spec = models.lookup(args.model)
    data = load_data(spec)
    variant = planted_variant(spec, data, args.cache_dir)
    requests = benchmark_requests(data)
    job = pipeline.engine_job({variant.weights: [variant.algorithm]},
                              {variant.algorithm: requests}, {variant.algorithm: variant}, {})
    print(f"{len(requests)} prompts for the variant {VARIANT!r} of {args.model}", flush=True)
    # Untimed: the first import of vLLM after a while reads its files from disk.
    subprocess.run([sys.executable, "-c", "import vllm"], check=True, capture_output=True)
    runs: dict[str, list[Run]] = {way.name: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="leakbench-engine-polling-") as tmp:
        for repeat in range(args.repeat):
            first = repeat % len(WAYS)
            for i, way in enumerate(WAYS[first:] + WAYS[:first]):
                run = run_engine(job, way, Path(tmp) / f"{repeat}-{i}")
                runs[way.name].append(run)
                print(f"repeat {repeat + 1}, {way.name}: generate {run.generate:.1f} s, CPU "
                      f"during it {generate_cpu_s(run):.1f} s ("
                      + ", ".join(f"{r} {s:.1f}" for r, s in run.generate_cpu.items() if s)
                      + f"), total {run.total:.1f} s", flush=True)
    text = section(args, f"{host}; {other_load(load, runs)}", requests, runs)
    write_section(args.docs, SECTION, text)
    print(text)


def other_load(load: OtherLoad, runs: dict[str, list[Run]]) -> str:
    """`load.note()` with the engines' EngineCore and worker processes left out: the engine
    process ends before them, so they are no waited-for children of this process, and OtherLoad
    would count them as other processes."""
    (wall0, busy0, own0), (wall1, busy1, own1) = load.start, load.sample()
    engines = sum(seconds for timings in runs.values() for run in timings
                  for role, seconds in run.life_cpu.items() if role != "engine process")
    others = max(0.0, (busy1 - busy0 - (own1 - own0) - engines) / (wall1 - wall0))
    return (f"other processes kept {others:.2f} of {os.cpu_count()} cores busy on average "
            "during the run" + (" (figures disturbed by them)" if others > 0.25 else ""))


def median(runs: list[Run], measure) -> float:
    return statistics.median(measure(run) for run in runs)


def generate_cpu_s(run: Run) -> float:
    """The CPU seconds of all of the engine's processes during `LLM.generate`."""
    return sum(run.generate_cpu.values())


def ratio(runs: dict[str, list[Run]], way: Way, measure) -> float:
    """The median of `measure` over `way`'s runs against that over the first way's."""
    return median(runs[way.name], measure) / median(runs[WAYS[0].name], measure)


def same_completions(runs: list[Run], reference: list[list[str]]) -> str:
    """How many requests got the reference's completions in every one of `runs`."""
    same = sum(all(run.texts[i] == expected for run in runs)
               for i, expected in enumerate(reference))
    return f"{same}/{len(reference)}"


def section(args, host: str, requests: list[Request], runs: dict[str, list[Run]]) -> str:
    reference = runs[WAYS[0].name][0].texts
    rows = []
    for way in WAYS:
        timings = runs[way.name]
        generate_cpu = [median(timings, lambda r, role=role: r.generate_cpu[role])
                        for role in ROLES]
        rows.append(" | ".join([
            f"| {way.name}",
            f"{median(timings, lambda r: r.start):.1f}",
            f"{median(timings, lambda r: r.generate):.1f}",
            f"{median(timings, lambda r: r.group_end):.1f}",
            f"{median(timings, lambda r: r.total):.1f}",
            f"{median(timings, lambda r: r.tokens / r.generate):,.0f}",
            *(f"{seconds:.1f}" for seconds in generate_cpu),
            f"{median(timings, generate_cpu_s):.1f}",
            f"{median(timings, lambda r: generate_cpu_s(r) / r.generate):.2f}",
            f"{median(timings, lambda r: sum(r.life_cpu.values())):.1f}",
            f"{same_completions(timings, reference)} |"]))
    environments = "; ".join(
        f"{way.name}: " + ", ".join(f"`{name}={value}`" for name, value in way.env.items())
        for way in WAYS)
    tokens = sorted({run.tokens for timings in runs.values() for run in timings})
    command = shlex.join(["python", "bench/engine_polling.py", *sys.argv[1:]])
    return "\n".join([
        "The CPU time the vLLM engine's processes take while it generates, per way of running "
        "it (`bench/engine_polling.py`, whose docstring says how it measures). Against "
        f"{WAYS[0].name}, medians: " + "; ".join(
            f"{way.name}: CPU during generate {ratio(runs, way, generate_cpu_s):.2f}x, generate "
            f"{ratio(runs, way, lambda r: r.generate):.2f}x, total "
            f"{ratio(runs, way, lambda r: r.total):.2f}x" for way in WAYS[1:]) + ".",
        "",
        f"- Machine: {host}; `VLLM_CPU_KVCACHE_SPACE={os.environ['VLLM_CPU_KVCACHE_SPACE']}`.",
        f"- Command: `{command}` ({time.strftime('%Y-%m-%d')}); model `{args.model}`, variant "
        f"`{VARIANT}` (the planted model); median of {args.repeat} repeat(s), each a fresh "
        "engine process per way, the ways in turn, the first one rotating each repeat.",
        f"- Prompts: {len(requests)} distinct requests, what a benchmark run sends for one "
        f"variant (as in \"Generation\"), greedy, 1 sample; tokens generated per run: "
        f"{', '.join(f'{t:,}' for t in tokens)}.",
        f"- Environment of the engine process: {environments}.",
        "- Start: from the spawn until `vllm.LLM(...)` returned; generate: the `LLM.generate` "
        "call; group end: `serving._kill_group` after the engine process exited; total: from "
        "the spawn until the process group was gone. CPU during generate: user + system seconds "
        "of each process of the engine's tree during `LLM.generate`; cores busy: all of them / "
        "generate. CPU of the whole engine: all of its processes from the spawn until the group "
        f"was gone, sampled every {SAMPLE_S} s. Same completions: requests whose completions "
        f"equal those of the first run of {WAYS[0].name}, in every run of the way.",
        "",
        "| way | start (s) | generate (s) | group end (s) | total (s) | tokens/s (generate) "
        "| CPU s, engine process | CPU s, EngineCore | CPU s, worker | CPU s, other "
        "| CPU s, all (generate) | cores busy (generate) | CPU s, whole engine "
        "| same completions |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
        *rows,
    ])


if __name__ == "__main__":
    main()
