"""The generation phase of a benchmark run against bare vLLM and transformers, side by side.

    python bench/generation.py [--model micro] [--repeat 3] [--naive-limit 200]
                               [--batched-limit 0] [--hf-threads 0] [--cache-dir DIR]

The prompts are those a benchmark run sends for one variant (the planted model, `none`): the leak
probes of the forget and the holdout set and the functional tasks (capability probe + HumanEval),
greedy, one sample each (`request(Decoding())`), deduplicated as the completion store does. Four
ways of answering them, each repeat in this one run:

(a) the suite: `leakbench.pipeline.generate` into an empty completion store (a fresh directory
    each repeat), timed from the call until the answers are back from the store. This includes
    the engine process (`python -m leakbench.serving`): its start, vLLM's import and engine
    build, `LLM.generate`, the JSON hand-over, the end of its process group and the store write.
    To split that time, the engine process is started through a short wrapper (TIMED_ENGINE)
    that records monotonic timestamps around `vllm.LLM(...)` and `LLM.generate` and then runs
    `leakbench.serving` as `__main__`, as `-m` does, and the end of its process group
    (`serving._kill_group`) is timed too; nothing else changes.
(b) bare vLLM: a fresh `python -c` process that builds `vllm.LLM` with the suite's engine
    keyword arguments (`leakbench.serving.engine_kwargs` of the same job) and calls
    `LLM.generate` once on the same prompts with the same `SamplingParams`. Timed from the
    process start (Popen) until `generate` returned in it.
(c) transformers `generate`, one prompt at a time, greedy, same max_tokens and stop strings
    (what a naive suite with one generate per test does). With --naive-limit N only N prompts,
    spread evenly over the list, are timed and the time per prompt is extrapolated to all.
(d) transformers `generate`, batches of 32 prompts of one sampling setting (max_tokens and
    stop strings; the prompts keep their order within a setting), left padding (--batched-limit
    as --naive-limit).

Engine start is counted in (a) and (b) alike ("with engine start", what a run pays), and also
left out of both ("generation only": the `LLM.generate` call in each engine process). For (c) and
(d) the model load (well under a second) is left out; tokenization and decoding are in; torch
runs with --hf-threads threads, by default the fastest count measured on a few prompts (on a busy
2-core machine, 2 threads can be 30x slower than 1).
Tokens = generated token ids (vLLM's `token_ids`; for transformers up to the stop/EOS).
Goals (issue 8): (a)/(b) at most 1.15x; (c)/(a) at least 15x. Writes the "Generation" section of
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

from host import OtherLoad, description

from leakbench import models, pipeline, serving
from leakbench.completions import request_key
from leakbench.docs_section import write_section
from leakbench.options import parse_cache_dir
from leakbench.plant import plant_config
from leakbench.probes import PrivacyData, functional_tasks
from leakbench.schema import Decoding, Request, Sampling, cut_at_stops
from leakbench.unlearn import Variant

ROOT = Path(__file__).resolve().parents[1]

PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
SECTION = "Generation"
GOAL_VS_VLLM = 1.15
GOAL_VS_NAIVE = 15.0
BATCH = 32
VARIANT = "none"

# The suite's engine process with timestamps: argv = [-c, MARKS_FILE, JOB_FILE, OUT_FILE].
TIMED_ENGINE = r"""
import json, os, runpy, sys, time
if __name__ == "__main__":
    marks = {"started": time.monotonic()}
    marks_file = sys.argv.pop(1)
    import vllm
    build, generate = vllm.LLM.__init__, vllm.LLM.generate
    def timed_build(self, *args, **kwargs):
        build(self, *args, **kwargs)
        marks["ready"] = time.monotonic()
    def timed_generate(self, *args, **kwargs):
        marks["generate_start"] = time.monotonic()
        outputs = generate(self, *args, **kwargs)
        marks["generate_end"] = time.monotonic()
        marks["tokens"] = sum(len(c.token_ids) for o in outputs for c in o.outputs)
        return outputs
    dump = json.dump
    def timed_dump(*args, **kwargs):  # leakbench.serving writes the results
        if "generate_end" in marks:
            marks.setdefault("results_dump", time.monotonic())
        return dump(*args, **kwargs)
    exit_now = os._exit
    def timed_exit(code):  # leakbench.serving ends its process once the results are written
        marks["results_written"] = time.monotonic()
        with open(marks_file, "w") as handle:
            dump(marks, handle)
        exit_now(code)
    vllm.LLM.__init__, vllm.LLM.generate = timed_build, timed_generate
    json.dump, os._exit = timed_dump, timed_exit
    runpy.run_module("leakbench.serving", run_name="__main__", alter_sys=True)
"""

# Bare vLLM: argv = [-c, JOB_FILE, OUT_FILE]; JOB_FILE = {engine, params, prompts, which}.
BARE_VLLM = r"""
import json, sys, time
if __name__ == "__main__":
    marks = {"started": time.monotonic()}
    from vllm import LLM, SamplingParams
    with open(sys.argv[1]) as handle:
        job = json.load(handle)
    llm = LLM(**job["engine"])
    marks["ready"] = time.monotonic()
    params = [SamplingParams(**p) for p in job["params"]]
    chosen = [params[i] for i in job["which"]]
    marks["generate_start"] = time.monotonic()
    outputs = llm.generate(job["prompts"], chosen)
    marks["generate_end"] = time.monotonic()
    marks["tokens"] = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    texts = [[c.text for c in o.outputs] for o in outputs]
    with open(sys.argv[2], "w") as handle:
        json.dump({"marks": marks, "texts": texts}, handle)
"""


@dataclass
class Timing:
    """One way of generating, one repeat. `start` is the engine start or the model load."""

    total: float  # with engine start (a, b); the timed generate calls (c, d)
    generate: float  # the generate call(s) alone
    start: float
    tokens: int
    prompts: int  # prompts actually timed
    texts: list[str] = field(default_factory=list, repr=False)
    phases: dict[str, float] = field(default_factory=dict)  # (a), (b): where the time went


def load_data(spec: models.ModelSpec) -> PrivacyData:
    """The cases a benchmark run on `spec` uses (as the plugin's `run_cases` fixture)."""
    return PrivacyData.load(ROOT / "cases", plant_config(models.family(spec)).forget_samples)


def planted_variant(spec: models.ModelSpec, data: PrivacyData, cache_dir: Path) -> Variant:
    """The `none` variant (the planted model), built by the pipeline or found in the cache."""
    return pipeline.build_variants(spec, (VARIANT,), data, cache_dir, False)[VARIANT]


def benchmark_requests(data: PrivacyData) -> list[Request]:
    """What a benchmark run asks of one variant, deduplicated as the completion store does."""
    requests = [p.request(Decoding()) for split in ("forget", "holdout")
                for p in data.leak_probes(split)]
    requests += [t.request(Decoding()) for t in functional_tasks()]
    return unique(requests)


def unique(requests: list[Request]) -> list[Request]:
    """The first of each set of equal requests (same prompt and sampling), in order."""
    first: dict[str, Request] = {}
    for request in requests:
        first.setdefault(request_key(request), request)
    return list(first.values())


@contextlib.contextmanager
def timed_engine(marks_file: Path, parent_marks: dict[str, float]):
    """While active, leakbench.serving starts its engine process through TIMED_ENGINE, and
    `parent_marks` gets the times its process group's end began and finished."""
    real, kill_group = serving.subprocess, serving._kill_group

    def popen(args, **kwargs):
        if list(args[1:3]) != ["-m", "leakbench.serving"]:
            raise RuntimeError(f"leakbench.serving starts its engine as {args!r}: update "
                               "bench/generation.py's TIMED_ENGINE")
        return real.Popen([args[0], "-c", TIMED_ENGINE, str(marks_file), *args[3:]], **kwargs)

    hooked = types.ModuleType("subprocess")
    hooked.__dict__.update(vars(real))

    def timed_kill_group(*args, **kwargs):
        parent_marks.setdefault("kill_start", time.monotonic())
        kill_group(*args, **kwargs)
        parent_marks["kill_end"] = time.monotonic()

    hooked.Popen = popen
    serving.subprocess, serving._kill_group = hooked, timed_kill_group
    try:
        yield
    finally:
        serving.subprocess, serving._kill_group = real, kill_group


def suite_generate(variant: Variant, requests: list[Request]) -> Timing:
    """(a): `pipeline.generate` of `requests` for `variant` into an empty store."""
    with tempfile.TemporaryDirectory(prefix="leakbench-generation-") as tmp:
        marks_file, parent = Path(tmp) / "engine-marks.json", {}
        with timed_engine(marks_file, parent):
            started = time.monotonic()
            answers = pipeline.generate({variant.algorithm: variant},
                                        {variant.algorithm: requests}, Path(tmp) / "cache")
            ended = time.monotonic()
        marks = json.loads(marks_file.read_text())
    texts = [answers[variant.algorithm][request_key(r)][0] for r in requests]
    phases = {  # consecutive: they add up to the total
        "spawn to engine start": marks["started"] - started,
        "vLLM import + engine build": marks["ready"] - marks["started"],
        "request set-up": marks["generate_start"] - marks["ready"],
        "LLM.generate": marks["generate_end"] - marks["generate_start"],
        "outputs to answers": marks["results_dump"] - marks["generate_end"],
        "results to JSON": marks["results_written"] - marks["results_dump"],
        "engine process exit": parent["kill_start"] - marks["results_written"],
        "end of its process group": parent["kill_end"] - parent["kill_start"],
        "store write + read": ended - parent["kill_end"],
    }
    return Timing(ended - started, marks["generate_end"] - marks["generate_start"],
                  marks["ready"] - started, marks["tokens"], len(requests), texts, phases)


def engine_kwargs(variant: Variant, requests: list[Request]) -> dict:
    """The `vllm.LLM` keyword arguments the suite's engine uses for this job."""
    job = pipeline.engine_job({variant.weights: [variant.algorithm]}, {variant.algorithm: requests},
                              {variant.algorithm: variant}, {})
    return serving.engine_kwargs(job)


def sampling_params(sampling: Sampling) -> dict:
    """The `SamplingParams` keywords leakbench.serving builds for a text request."""
    return {"n": sampling.n, "temperature": sampling.temperature, "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens, "stop": list(sampling.stop), "seed": sampling.seed,
            "detokenize": True}


def bare_generate(variant: Variant, requests: list[Request]) -> Timing:
    """(b): one fresh process, `vllm.LLM(**suite kwargs).generate(prompts, params)`."""
    settings = list(dict.fromkeys(r.sampling for r in requests))
    job = {"engine": engine_kwargs(variant, requests),
           "params": [sampling_params(s) for s in settings],
           "prompts": [r.prompt for r in requests],
           "which": [settings.index(r.sampling) for r in requests]}
    with tempfile.TemporaryDirectory(prefix="leakbench-bare-") as tmp:
        job_file, out_file = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_file.write_text(json.dumps(job))
        started = time.monotonic()
        with open(Path(tmp) / "engine.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-c", BARE_VLLM, str(job_file),
                                     str(out_file)], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            code = proc.wait()
            exited = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything of that engine still alive
        if code != 0 or not out_file.exists():
            tail = (Path(tmp) / "engine.log").read_text(errors="replace").splitlines()[-15:]
            sys.exit("bench/generation.py: the bare vLLM process failed:\n" + "\n".join(tail))
        out = json.loads(out_file.read_text())
    marks = out["marks"]
    phases = {
        "spawn to engine start": marks["started"] - started,
        "vLLM import + engine build": marks["ready"] - marks["started"],
        "request set-up": marks["generate_start"] - marks["ready"],
        "LLM.generate": marks["generate_end"] - marks["generate_start"],
        "process exit (not counted)": exited - marks["generate_end"],
    }
    return Timing(marks["generate_end"] - started, marks["generate_end"] - marks["generate_start"],
                  marks["ready"] - started, marks["tokens"], len(requests),
                  [t[0] for t in out["texts"]], phases)


def spread(requests: list[Request], limit: int) -> list[Request]:
    """At most `limit` requests (0: all), evenly spread over the list."""
    if not limit or limit >= len(requests):
        return requests
    stride = math.ceil(len(requests) / limit)
    return requests[::stride]


class HFGenerator:
    """transformers `generate` on the variant's weights, greedy, left padding."""

    def __init__(self, weights: Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.monotonic()
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(weights)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32).eval()
        self.load_s = time.monotonic() - started

    def choose_threads(self, requests: list[Request], threads: int) -> int:
        """Set torch's thread count: `threads`, or with 0 the fastest of 1 .. cores on a few
        prompts at batch 1 (on a busy machine more threads than free cores is much slower)."""
        if threads:
            self.torch.set_num_threads(threads)
            return threads
        trial = spread(requests, 6)
        self.run(trial[:1], 1, 0)  # untimed: the first generate call pays for warming up
        times = {}
        for count in range(1, (os.cpu_count() or 1) + 1):
            self.torch.set_num_threads(count)
            times[count] = self.run(trial, 1, 0).total
        best = min(times, key=times.get)
        self.torch.set_num_threads(best)
        return best

    def generated(self, row) -> list[int]:
        """The generated ids of one output row up to its end: EOS (kept) or padding (left out)."""
        ids = row.tolist()
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        for i, token in enumerate(ids):
            if token == eos:
                return ids[: i + 1]
            if token == pad:
                return ids[:i]
        return ids

    def batch(self, requests: list[Request]) -> tuple[list[str], int]:
        sampling = requests[0].sampling
        encoded = self.tokenizer([r.prompt for r in requests], return_tensors="pt",
                                 padding=True)
        extra = {"stop_strings": list(sampling.stop), "tokenizer": self.tokenizer} \
            if sampling.stop else {}
        with self.torch.inference_mode():
            out = self.model.generate(**encoded, max_new_tokens=sampling.max_tokens,
                                      do_sample=False, pad_token_id=self.tokenizer.pad_token_id,
                                      eos_token_id=self.tokenizer.eos_token_id, **extra)
        texts, tokens = [], 0
        for row in out[:, encoded["input_ids"].shape[1]:]:
            ids = self.generated(row)
            tokens += len(ids)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            texts.append(cut_at_stops(text, sampling.stop))
        return texts, tokens

    def run(self, requests: list[Request], batch_size: int, limit: int) -> Timing:
        """(c) with batch_size 1, (d) with 32: `limit` prompts timed, extrapolated to all. One
        batch shares max_tokens and stop strings: the prompts are grouped by sampling setting
        (in order), then cut into batches."""
        chosen = spread(requests, limit)
        answers: dict[int, str] = {}  # position in `chosen` -> completion
        tokens = 0
        started = time.monotonic()
        groups: dict[Sampling, list[int]] = {}
        for i, request in enumerate(chosen):
            groups.setdefault(request.sampling, []).append(i)
        for positions in groups.values():
            for b in range(0, len(positions), batch_size):
                batch = positions[b : b + batch_size]
                batch_texts, batch_tokens = self.batch([chosen[i] for i in batch])
                answers.update(zip(batch, batch_texts))
                tokens += batch_tokens
        elapsed = time.monotonic() - started
        texts = [answers[i] for i in range(len(chosen))]
        return Timing(elapsed, elapsed, self.load_s, tokens, len(chosen), texts)


def agreement(texts: list[str], reference: list[str], requests: list[Request],
              chosen: list[Request]) -> str:
    """How many of the timed completions equal the reference's for the same request."""
    by_key = dict(zip((request_key(r) for r in requests), reference))
    same = sum(text == by_key[request_key(r)] for text, r in zip(texts, chosen))
    return f"{same}/{len(chosen)}"


def scaled(t: Timing, count: int) -> tuple[float, float, float]:
    """(total, generate, tokens) extrapolated from the timed prompts to `count` prompts."""
    factor = count / t.prompts
    return t.total * factor, t.generate * factor, t.tokens * factor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="micro")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-limit", type=int, default=200,
                        help="prompts timed for transformers at batch 1 (0: all), extrapolated")
    parser.add_argument("--batched-limit", type=int, default=0,
                        help="prompts timed for transformers at batch 32 (0: all)")
    parser.add_argument("--hf-threads", type=int, default=0,
                        help="torch threads for transformers (0: the fastest of 1 .. cores)")
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""))
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    host, load = description(), OtherLoad()
    spec = models.lookup(args.model)
    data = load_data(spec)
    variant = planted_variant(spec, data, args.cache_dir)
    requests = benchmark_requests(data)
    print(f"{len(requests)} prompts for the variant {VARIANT!r} of {args.model}", flush=True)
    hf = HFGenerator(variant.weights)
    threads = hf.choose_threads(requests, args.hf_threads)
    # Untimed: vLLM's first import after a while reads its files from disk; warm the page cache
    # so that whichever of (a) and (b) runs first is not charged for it.
    subprocess.run([sys.executable, "-c", "import vllm"], check=True, capture_output=True)
    runs: dict[str, list[Timing]] = {"a": [], "b": [], "c": [], "d": []}
    for repeat in range(args.repeat):
        for way in ("ab" if repeat % 2 == 0 else "ba"):  # alternate: no order advantage
            runs[way].append(suite_generate(variant, requests) if way == "a"
                             else bare_generate(variant, requests))
        runs["c"].append(hf.run(requests, 1, args.naive_limit))
        runs["d"].append(hf.run(requests, BATCH, args.batched_limit))
        print(f"repeat {repeat + 1}: " + ", ".join(
            f"({w}) {r[-1].total:.1f} s" for w, r in runs.items()), flush=True)
    text = section(args, f"{host}; {load.note()}", requests, runs, threads)
    write_section(PERFORMANCE_MD, SECTION, text)
    print(text)


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def phase_rows(runs: dict[str, list[Timing]]) -> list[str]:
    """Where the time of (a) and (b) went, median per phase."""
    names = list(dict.fromkeys([*runs["a"][0].phases, *runs["b"][0].phases]))
    rows = []
    for name in names:
        cells = [f"{statistics.median(t.phases[name] for t in runs[way]):.2f}"
                 if name in runs[way][0].phases else "-" for way in "ab"]
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return rows


def section(args, host: str, requests: list[Request], runs: dict[str, list[Timing]],
            threads: int) -> str:
    count = len(requests)
    med = {}  # way -> (total, generate, start, tokens), extrapolated to all prompts
    for way, timings in runs.items():
        totals, gens, tokens = zip(*(scaled(t, count) for t in timings))
        med[way] = (statistics.median(totals), statistics.median(gens),
                    statistics.median(t.start for t in timings), statistics.median(tokens))
    vs_vllm = med["a"][0] / med["b"][0]
    vs_vllm_gen = med["a"][1] / med["b"][1]
    vs_naive = med["c"][0] / med["a"][0]
    vs_naive_gen = med["c"][1] / med["a"][1]
    vs_batched = med["d"][0] / med["a"][0]
    timed = {way: runs[way][0].prompts for way in "cd"}
    extrapolated = {way: ", extrapolated" if timed[way] < count else "" for way in "cd"}
    names = {
        "a": "(a) suite: `pipeline.generate` (its engine process)",
        "b": "(b) bare `vllm.LLM(...).generate` (fresh process)",
        "c": f"(c) transformers `generate`, batch 1 ({timed['c']} of {count} timed"
             f"{extrapolated['c']})",
        "d": f"(d) transformers `generate`, batch {BATCH}, left padding ({timed['d']} of {count} "
             f"timed{extrapolated['d']})",
    }
    rows = []
    for way, (total, gen, start, tokens) in med.items():
        rows.append(f"| {names[way]} | {tokens:,.0f} | {start:.1f} | {gen:.1f} | {total:.1f} "
                    f"| {count / gen:.1f} | {tokens / gen:,.0f} | {count / total:.1f} |")
    suite_texts = runs["a"][0].texts
    same_bare = agreement(runs["b"][0].texts, suite_texts, requests, requests)
    same_naive = agreement(runs["c"][0].texts, suite_texts, requests,
                           spread(requests, args.naive_limit))
    same_batched = agreement(runs["d"][0].texts, suite_texts, requests,
                             spread(requests, args.batched_limit))
    command = shlex.join(["python", "bench/generation.py", *sys.argv[1:]])
    return "\n".join([
        f"Goal 1: the suite's generation phase at most {GOAL_VS_VLLM}x a bare `vllm.LLM.generate` "
        f"of the same prompts. Measured, engine start included in both: {vs_vllm:.2f}x, goal "
        f"{verdict(vs_vllm <= GOAL_VS_VLLM)}; generation only (the `LLM.generate` call in each): "
        f"{vs_vllm_gen:.2f}x, goal {verdict(vs_vllm_gen <= GOAL_VS_VLLM)}.",
        "",
        f"Goal 2: the suite at least {GOAL_VS_NAIVE:.0f}x faster than transformers `generate` one "
        f"prompt at a time. Measured: {vs_naive:.1f}x with the suite's engine start counted, goal "
        f"{verdict(vs_naive >= GOAL_VS_NAIVE)} ({vs_naive_gen:.1f}x generation only); "
        f"transformers batched at {BATCH} takes {vs_batched:.1f}x the suite's time.",
        "",
        f"- Machine: {host}; `VLLM_CPU_KVCACHE_SPACE={os.environ['VLLM_CPU_KVCACHE_SPACE']}`.",
        f"- Command: `{command}` ({time.strftime('%Y-%m-%d')}); model `{args.model}`, variant "
        f"`{VARIANT}` (the planted model); median of {args.repeat} repeat(s), (a) and (b) "
        "alternating which goes first.",
        f"- Prompts: {count} distinct requests, what a benchmark run sends for one variant: leak "
        "probes of the forget and holdout sets and the functional tasks (capability probe + "
        "HumanEval), greedy, 1 sample, the suite's max_tokens and stop strings per kind.",
        "- (a) is timed from the `pipeline.generate` call until it returns the answers (engine "
        "process start, vLLM import, engine build, generate, JSON hand-over, end of the process "
        "group, store write), into an empty store each repeat. (b) is timed from the start of a "
        "fresh process until `generate` returned in it, with the suite's `vllm.LLM` arguments "
        "and the same `SamplingParams`. Start (a, b): from the call (a) or the spawn (b) until "
        "`vllm.LLM(...)` returned; generate: the `LLM.generate` call; total: with engine start. "
        "(c, d): start is the model load, not counted; generate = total = tokenization + "
        "`generate` + decoding. Batch 1 and batch 32 time a subset when limited (prompts spread "
        "evenly over the list) and are extrapolated per prompt to all of them.",
        f"- Same completions: bare vLLM vs the suite {same_bare}; transformers batch 1 vs the "
        f"suite {same_naive}; batch {BATCH} vs the suite {same_batched}.",
        f"- transformers ran with {threads} torch thread(s)"
        + (" (chosen as the fastest on 6 prompts)." if not args.hf_threads else ".")
        + " An untimed `import vllm` in a process of its own warms the page cache first.",
        "",
        "| way | tokens generated | start (s) | generate (s) | total (s) "
        "| prompts/s (generate) | tokens/s (generate) | prompts/s (total) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "Where the time of (a) and (b) went (s, median; the phases of (a) add up to its total):",
        "",
        "| phase | (a) suite | (b) bare vLLM |",
        "| --- | ---: | ---: |",
        *phase_rows(runs),
    ])


if __name__ == "__main__":
    main()
