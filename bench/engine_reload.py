"""Loading weights into a running engine in place, against starting a fresh engine, on `tiny`.

    python bench/engine_reload.py --cache-dir DIR [--prompts 150] [--cycles 3]

DIR holds a cached `pytest benchmark --model=tiny --algo=all` run: the planted model, the retrain
reference and six full-weight variants, weights of one architecture
(`leakbench.pipeline.architecture_key`). Both ways run the suite's engine job
(`pipeline.engine_job`, `serving.engine_kwargs`) in an engine process of their own:

The engine runs as the suite runs it: on the CPU in the engine process itself
(`serving.engine_in_this_process`).

(a) one engine starts on the first of these weights and loads each next one in place
    (`serving._reload`: vLLM's `reload_weights`, the tied layers processed again, the prefix
    cache reset), generating the same prompts on each, --cycles times over (the first weights
    again after the last): each reload is timed, the memory of the process tree taken after each
    generation (does it settle, or grow with every reload?), and a load of weights already
    served must answer as their first did;
(b) a fresh engine on the first and on the last weights that (a) reloaded, timed from the process
    start until `vllm.LLM(...)` returned (start), and the constructor alone. Its answers must
    equal (a)'s on the same weights;
(c) (a) again, glibc's `malloc_trim(0)` called after each generation, before the memory is taken;
(d) one engine that loads the first weights again in place, as many loads as one pass of (a):
    what grows with loads of any weights, against what grows with new weights.

Where (a)'s memory goes: after each generation, besides the resident size, glibc's own count of
its heap (`mallinfo2`, every arena): the bytes in use (`uordblks` + `hblkhd`) and the bytes freed
but kept (`fordblks`). Memory that grows in use is held by someone; memory that grows freed is
the allocator keeping what the old weights' tensors and a generation's buffers returned, which
(c)'s trim gives back.

Prompts: --prompts of the requests a benchmark run sends one variant (bench/generation.py),
spread over the list: greedy text completions. Writes the "Engine reload" section of
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import NoReturn

from generation import ROOT, benchmark_requests, load_data, spread
from host import OtherLoad, description

from leakbench import models, pipeline, serving
from leakbench.docs_section import write_section
from leakbench.options import parse_cache_dir
from leakbench.schema import Request
from leakbench.serving import EngineJob
from leakbench.unlearn import Variant

PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
SECTION = "Engine reload"


def shared_weights(cache_dir: Path) -> list[Path]:
    """The weights directories in `cache_dir` of the largest group that one engine serves."""
    groups: dict[str, list[Path]] = {}
    for weights in sorted(p.parent for p in cache_dir.glob("*/*/config.json")):
        groups.setdefault(pipeline.architecture_key(weights), []).append(weights)
    return max(groups.values(), key=len)


def run_engine(weights: list[Path], requests: list[Request], workdir: Path, cycles: int = 1,
               trim: bool = False) -> dict:
    """An engine process that starts on weights[0] and reloads the others in turn, `cycles`
    times over (`engine`): its start (s, from the spawn), constructor and reload times, memory
    after each load (after `malloc_trim(0)` with `trim`), the first answers per weights and how
    many later loads answered the same."""
    variants = {str(w): Variant(str(w), w, None, str(w)) for w in weights}
    job = pipeline.engine_job({w: [str(w)] for w in weights},
                              {name: requests for name in variants}, variants, {})
    (workdir / "job.json").write_text(job.to_json())
    (workdir / "cycles").write_text(str(cycles))
    if trim:
        (workdir / "trim").touch()
    spawned = time.monotonic()
    proc = subprocess.Popen([sys.executable, __file__, "--engine", str(workdir)],
                            start_new_session=True)
    try:
        code = proc.wait()
    finally:
        serving._kill_group(proc)
    if code != 0:
        raise SystemExit(f"the engine process on {weights[0]} exited with status {code}")
    out = json.loads((workdir / "out.json").read_text())
    return {**out, "start": out["ready"] - spawned}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def glibc_heap_mib(libc: ctypes.CDLL) -> tuple[float, float]:
    """This process's glibc heap, every arena: (in use, freed but kept), MiB."""
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20, info.fordblks / 2**20


def engine(workdir: Path) -> NoReturn:
    """The engine process of `run_engine` (time.monotonic is one clock for both processes)."""
    import psutil

    job = EngineJob.from_json((workdir / "job.json").read_text())
    os.environ["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"  # as leakbench.serving._serve does
    from vllm import LLM
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        serving.engine_in_this_process()  # as the suite runs its engines

    called = time.monotonic()
    llm = LLM(**serving.engine_kwargs(job))
    ready = time.monotonic()
    out = {"ready": ready, "constructor": ready - called, "reloads": [], "rss_mib": [],
           "in_use_mib": [], "kept_mib": [], "answers": {}, "same_again": 0}
    tree = psutil.Process()
    cycles = int((workdir / "cycles").read_text())
    trim = (workdir / "trim").exists()
    libc = ctypes.CDLL("libc.so.6")
    for i, (weights, (name,)) in enumerate([*job.weights.items()] * cycles):
        if i:
            started = time.monotonic()
            serving._reload(llm, weights)
            out["reloads"].append(time.monotonic() - started)
        answers = serving._generate(llm, {name: job.requests[name]}, {})[name]
        out["same_again"] += answers == out["answers"].setdefault(weights, answers)
        if trim:
            libc.malloc_trim(0)
        in_use, kept = glibc_heap_mib(libc)
        out["in_use_mib"].append(in_use)
        out["kept_mib"].append(kept)
        out["rss_mib"].append(sum(p.memory_info().rss for p in
                                  [tree, *tree.children(recursive=True)]) / 2**20)
    (workdir / "out.json").write_text(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # as leakbench.serving does: the parent ends the process group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""))
    parser.add_argument("--prompts", type=int, default=150)
    parser.add_argument("--cycles", type=int, default=3,
                        help="times (a) loads every weights directory (%(default)s): whether its "
                        "memory settles or grows with every reload")
    parser.add_argument("--engine", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        engine(args.engine)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    host, load = description(), OtherLoad()
    weights = shared_weights(args.cache_dir)
    requests = spread(benchmark_requests(load_data(models.lookup("tiny"))), args.prompts)
    print(f"{len(weights)} weights directories, {len(requests)} prompts", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for way, served, cycles in (("a", weights, args.cycles), ("first", weights[1:2], 1),
                                    ("last", weights[-1:], 1), ("c", weights, args.cycles),
                                    ("d", weights[:1], len(weights))):
            (Path(tmp) / way).mkdir()
            runs[way] = run_engine(served, requests, Path(tmp) / way, cycles, trim=way == "c")
            print(f"({way}) done", flush=True)
    text = section(args, f"{host}; {load.note()}", weights, requests, runs)
    write_section(PERFORMANCE_MD, SECTION, text)
    print(text)


def section(args, host: str, weights: list[Path], requests: list[Request], runs: dict) -> str:
    reloads = runs["a"]["reloads"]
    starts = [runs[way]["start"] for way in ("a", "first", "last")]
    constructors = [runs[way]["constructor"] for way in ("a", "first", "last")]
    same = {way: sum(a == b for a, b in zip(runs[way]["answers"][str(w)],
                                            runs["a"]["answers"][str(w)]))
            for way, w in (("first", weights[1]), ("last", weights[-1]))}
    rss = runs["a"]["rss_mib"]

    def change(way: str, key: str) -> str:
        return f"{runs[way][key][-1] - runs[way][key][0]:+,.0f}"

    passes = range(len(weights) - 1, len(rss), len(weights))  # the last load of each pass
    kinds = Counter(w.parent.name for w in weights)  # the stages: planted, retrain, variant
    stages = ", ".join(f"{kind} x{count}" if count > 1 else kind for kind, count in kinds.items())
    command = shlex.join(["python", "bench/engine_reload.py", *sys.argv[1:]])
    return "\n".join([
        f"One in-place reload: {statistics.median(reloads):.3f} s (median of {len(reloads)}; "
        f"{min(reloads):.3f}-{max(reloads):.3f} s). A fresh engine: {statistics.median(starts):.1f}"
        f" s from the process start until `vllm.LLM(...)` returned (median of {len(starts)}; "
        f"{min(starts):.1f}-{max(starts):.1f} s), {statistics.median(constructors):.1f} s of it "
        "in the constructor.",
        "",
        f"- Machine: {host}; `VLLM_CPU_KVCACHE_SPACE={os.environ['VLLM_CPU_KVCACHE_SPACE']}`.",
        f"- Command: `{command}` ({time.strftime('%Y-%m-%d')}), on {len(weights)} weights "
        f"directories of `tiny` ({stages}): (a) one engine "
        f"on them in turn, {args.cycles} time(s) over, {len(reloads)} reloads; (b) a fresh "
        "engine on the first reloaded "
        "and on the last; (c) (a) again, glibc's `malloc_trim(0)` after each generation; (d) "
        f"the first weights loaded {len(weights)} times in one engine. Start: (a) and both (b).",
        f"- Prompts: {len(requests)} of a benchmark run's requests for one variant, greedy.",
        f"- Same answers, a fresh engine vs after the reload: first reloaded {same['first']}/"
        f"{len(requests)}, last {same['last']}/{len(requests)}.",
        f"- Same answers when (a) loads weights again: {runs['a']['same_again'] - len(weights)}/"
        f"{len(rss) - len(weights)} loads.",
        f"- Memory of (a)'s process tree after generating on the first weights {rss[0]:,.0f} MiB, "
        f"on the last {rss[-1]:,.0f} MiB; the change over each reload and its generation: "
        + ", ".join(f"{b - a:+,.0f}" for a, b in zip(rss, rss[1:])) + " MiB; over each time "
        f"through the {len(weights)} weights: {over_passes(rss, passes, len(weights))} MiB.",
        "",
        "| after each pass through the weights | " + " | ".join(
            f"pass {number}" for number in range(1, len(passes) + 1)) + " |",
        "| --- |" + " ---: |" * len(passes),
        *(f"| {label} | " + " | ".join(f"{runs[way][key][end]:,.0f}" for end in passes) + " |"
          for label, way, key in (
              ("(a) resident, MiB", "a", "rss_mib"),
              ("(a) glibc heap in use, MiB", "a", "in_use_mib"),
              ("(a) glibc heap freed but kept, MiB", "a", "kept_mib"),
              ("(c) resident after malloc_trim(0), MiB", "c", "rss_mib"),
              ("(c) glibc heap in use, MiB", "c", "in_use_mib"))),
        "",
        f"Over the {len(rss) - 1} loads after the first: resident {change('a', 'rss_mib')} MiB "
        f"in (a), {change('c', 'rss_mib')} MiB in (c); glibc heap in use "
        f"{change('a', 'in_use_mib')} MiB and freed but kept {change('a', 'kept_mib')} MiB in "
        f"(a). Over the {len(weights) - 1} loads of the same weights after the first in (d): "
        f"resident {change('d', 'rss_mib')} MiB, glibc heap in use {change('d', 'in_use_mib')} "
        f"MiB, freed but kept {change('d', 'kept_mib')} MiB.",
    ])


def over_passes(values: list[float], passes: range, size: int) -> str:
    """The change of `values` over each pass through the `size` weights."""
    return ", ".join(f"{values[end] - values[max(0, end - size)]:+,.0f}" for end in passes)


if __name__ == "__main__":
    main()
