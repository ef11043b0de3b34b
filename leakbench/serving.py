"""Serving: every completion of a run comes from one batched vLLM `generate` per base model.

The engine runs in a child process of its own (`python -m leakbench.serving JOB`), in its own
process group: pytest workers never import vLLM or torch for generation, the engine's log goes to
a file whose last lines explain a failure, and ending the group leaves no process behind, also
after an interrupt. Variants of one base are LoRA adapters served by that one engine
(`enable_lora`, one `LoRARequest` per request), so all requests of all variants, of both kinds
(leakbench.schema), go out in a single `LLM.generate` call.

One engine also serves several sets of full weights of one architecture (the planted model, the
retrain reference, fully fine-tuned variants; leakbench.pipeline decides which may share): it
starts on the first, generates for its variants, then loads the next in place (vLLM's
`reload_weights`, far quicker than starting an engine), and so on. `_reload` says what a reload
must also renew besides the weights.

The user's engine arguments (`EngineJob.engine_args`, from --engine-arg and --engine-config) go to
`vllm.LLM` over LeakBench's defaults. On the CPU one default is the KV cache's size, from the job
(leakbench.engine_memory): vLLM's own would reserve 92% of the machine's memory. Their names are
checked against `vllm.EngineArgs` in the engine process, where vLLM is imported anyway: an
unknown name ends the run with one line that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from leakbench import engine_memory, progress
from leakbench.atomic import replacing, write_atomically
from leakbench.schema import Answer, Request, TokenRequest, request_from_dict, request_to_dict


@dataclass(frozen=True)
class EngineJob:
    """Everything one engine generates: the requests of each variant, served on its weights
    directory (`weights`, in the order the engine loads them), through its LoRA adapter or on the
    bare weights (None)."""

    weights: dict[str, list[str]]  # weights directory -> the variants served on it, in load order
    adapters: dict[str, str | None]  # variant name -> LoRA adapter directory, or None
    requests: dict[str, list[Request | TokenRequest]]  # variant name -> its requests
    max_lora_rank: int = 16
    max_model_len: int = 2048
    dtype: str = "float32"
    engine_args: dict = field(default_factory=dict)  # passed through to vllm.LLM

    def to_json(self) -> str:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        requests = {name: [request_to_dict(r) for r in rs] for name, rs in self.requests.items()}
        return json.dumps({**fields, "requests": requests})

    @classmethod
    def from_json(cls, text: str) -> EngineJob:
        raw = json.loads(text)
        raw["requests"] = {name: [request_from_dict(r) for r in requests]
                           for name, requests in raw["requests"].items()}
        return cls(**raw)


class EngineFailed(RuntimeError):
    """The engine ended without results; the message names the variants and shows its log, or is
    the one line that says which engine argument vLLM does not know."""


class UnknownEngineArg(ValueError):
    """An engine argument that `vllm.EngineArgs` does not have; the message is one line."""


LOG_TAIL_LINES = 15
CPU_PREFILL_TOKENS = 8192  # per-step token budget when chunked prefill is off on the CPU
TEST_PAUSE_ENV = "LEAKBENCH_TEST_ENGINE_PAUSE_FILE"  # the fault tests' hook: `_pause_for_tests`


def run(job: EngineJob, workdir: Path, *, timeout_s: float | None = None
        ) -> dict[str, list[Answer]]:
    """Run `job` in a fresh engine process; return, per variant, each request's answer."""
    workdir.mkdir(parents=True, exist_ok=True)
    job_file, out_file = workdir / "job.json", workdir / "out.json"
    log_file, rejected_file = workdir / "engine.log", _rejected_file(out_file)
    job_file.write_text(job.to_json())
    out_file.unlink(missing_ok=True)
    rejected_file.unlink(missing_ok=True)
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "leakbench.serving", str(job_file), str(out_file)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **progress.child_env()},
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except BaseException:  # timeout, KeyboardInterrupt, a failing test session
            _kill_group(proc, grace_s=0)  # at once: an xdist worker may be ended right after
            raise
        finally:
            _kill_group(proc)
    if rejected_file.exists():
        raise EngineFailed(rejected_file.read_text())
    if code != 0 or not out_file.exists():
        tail = log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        raise EngineFailed(
            f"vLLM engine for {', '.join(job.weights)} (variants: {', '.join(job.adapters)}) "
            f"exited with status {code}; last lines of {log_file}:\n" + "\n".join(tail))
    return json.loads(out_file.read_text())


def _kill_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """End the engine's whole process group (the engine core and its workers too): SIGTERM, and
    SIGKILL to what is left after `grace_s` seconds (SIGKILL at once when 0)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM if grace_s else signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _rejected_file(out_file: Path) -> Path:
    """Where the engine process writes the one line that rejects an engine argument."""
    return out_file.with_suffix(".rejected")


def engine_kwargs(job: EngineJob, *, on_cpu: bool = False) -> dict:
    """The keyword arguments of `vllm.LLM` for `job`, whose engine starts on its first weights:
    its defaults, the user's engine arguments over them. With adapters and prompt log-probs asked,
    LoRA is restricted to the modules the adapters train (`lora_target_modules`).

    On the CPU (`on_cpu`) the KV cache gets the size the job's requests can use
    (`kv_cache_memory_bytes`, leakbench.engine_memory), unless the user sized it: with the engine
    argument `kv_cache_memory_bytes` or `gpu_memory_utilization`, or VLLM_CPU_KVCACHE_SPACE.

    On the CPU (`on_cpu`), seeded sampling turns chunked prefill off: vLLM rewinds a seeded
    request's random generator after each partial prefill (`Generator.set_offset`), which CPU
    generators do not have, so the first partially prefilled sampled request kills the engine
    ("CPU Generator does not use offset"; vLLM 0.32). Whole prompts are prefilled in one step
    instead, with a token budget of at least the context length.
    """
    adapters = [path for path in job.adapters.values() if path is not None]
    kwargs = {"model": next(iter(job.weights)), "dtype": job.dtype,
              "max_model_len": job.max_model_len, "seed": 0, "enable_lora": bool(adapters),
              "max_lora_rank": job.max_lora_rank, "max_loras": max(1, len(job.adapters))}
    if adapters and any(isinstance(r, TokenRequest) and r.prompt_logprobs
                        for requests in job.requests.values() for r in requests):
        kwargs["lora_target_modules"] = lora_target_modules(adapters)
    if on_cpu and any(r.sampling.temperature > 0 and r.sampling.seed is not None
                      for requests in job.requests.values() for r in requests):
        kwargs["enable_chunked_prefill"] = False
        kwargs["max_num_batched_tokens"] = max(job.max_model_len, CPU_PREFILL_TOKENS)
    kwargs.update(job.engine_args)
    if (on_cpu and not set(engine_memory.USER_MEMORY_ARGS) & job.engine_args.keys()
            and engine_memory.kv_cache_space_env() is None):
        shape = engine_memory.ModelShape.of_weights(Path(kwargs["model"]))
        requests = [r for variant_requests in job.requests.values() for r in variant_requests]
        kwargs["kv_cache_memory_bytes"] = engine_memory.kv_cache_bytes(shape, requests, kwargs)
    return kwargs


def lora_target_modules(adapter_dirs: Iterable[str]) -> list[str]:
    """The modules (last part of their dotted names) the LoRA adapters in `adapter_dirs` train.

    Given as `lora_target_modules`, vLLM wraps only those, and not the logits processor: its LoRA
    version computes prompt log-probs with one LoRA index per request instead of per token, which
    fails on the CPU and is wrong on GPUs (vllm-project/vllm#16668, #29955, #51594). So an
    adapter that trains lm_head cannot give prompt log-probs; that is an error.
    """
    names: set[str] = set()
    for directory in adapter_dirs:
        config = json.loads((Path(directory) / "adapter_config.json").read_text())
        targets = config["target_modules"]
        if isinstance(targets, str):
            raise ValueError(f"{directory}: target_modules is the pattern {targets!r}; prompt "
                             "log-probs need the adapter's module names")
        names.update(target.rsplit(".", 1)[-1] for target in targets)
    if "lm_head" in names:
        raise ValueError("a LoRA adapter trains lm_head: vLLM cannot give prompt log-probs "
                         "through it (vllm-project/vllm#16668)")
    return sorted(names)


def check_engine_args(names: Iterable[str], valid: Collection[str]) -> None:
    """Raise UnknownEngineArg naming the first of `names` not in `valid`, listing `valid`."""
    unknown = [name for name in names if name not in valid]
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UnknownEngineArg(f"--engine-arg: vLLM has no engine argument {unknown[0]!r}{hint}; "
                               f"valid (vllm.EngineArgs): {', '.join(sorted(valid))}")


def _serve(job: EngineJob, out_file: Path) -> NoReturn:
    """The engine process's work: one LLM; for each weights directory in turn (loaded at start or
    in place), one generate call over the requests of its variants; the answers written to
    `out_file`, and the process ended at once."""
    if set(engine_memory.USER_MEMORY_ARGS) & job.engine_args.keys():
        # The user sized the KV cache or the memory share: vLLM would apply this over it.
        os.environ.pop(engine_memory.KV_CACHE_SPACE_ENV, None)
    if len(job.weights) > 1:
        # `LLM.apply_model` (in _reload) sends a function to the engine's worker process, which
        # vLLM pickles only when allowed; both ends are this engine's own processes.
        os.environ["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"
    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs
    from vllm.lora.request import LoRARequest
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        engine_in_this_process()
    check_engine_args(job.engine_args, [f.name for f in dataclasses.fields(EngineArgs)
                                        if not f.name.startswith("_")])
    with progress.stage("engine start", cpu_clock=_engine_cpu_seconds):
        llm = LLM(**engine_kwargs(job, on_cpu=current_platform.is_cpu()))
    loras = {name: LoRARequest(name, i + 1, path)
             for i, (name, path) in enumerate(job.adapters.items()) if path is not None}
    results: dict[str, list[Answer]] = {}
    _pause_for_tests()
    for i, (weights, names) in enumerate(job.weights.items()):
        label = f"engine weights {i + 1}/{len(job.weights)}: {', '.join(names)}"
        with progress.stage(label, cpu_clock=_engine_cpu_seconds) as reported:
            if i:
                _reload(llm, weights)
            print(f"LeakBench: generating on {weights} for {', '.join(names)}", flush=True)
            answers = _generate(llm, {name: job.requests[name] for name in names}, loras)
            reported.advance(0, prompts=sum(len(job.requests[name]) for name in names))
        results.update(answers)
    with replacing(out_file) as temporary, open(temporary, "w") as handle:
        json.dump(results, handle)
    # vLLM's orderly shutdown, run when `llm` is released, takes seconds that every run would
    # pay; the answers are on disk and `run` ends the whole process group.
    try:
        _end_process_groups()
    except Exception:  # the answers are written; the engine's log shows what left the file
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _end_process_groups() -> None:
    """End vLLM's torch.distributed groups in this process. The engine's group meets through a
    file, vLLM's `vllm_dist_<id>` in the temporary directory, which torch removes when the last
    group using it ends; os._exit alone left one such file behind per engine. With the engine in
    this process (the CPU's way) this removes it; vLLM's own processes (GPUs) keep theirs."""
    from vllm.distributed.parallel_state import (
        destroy_distributed_environment,
        destroy_model_parallel,
    )

    destroy_model_parallel()
    destroy_distributed_environment()


def engine_in_this_process() -> None:
    """On the CPU: vLLM's engine core and model in this process (executor "uni"), not in two of
    their own: there the engine core waits for each step on a shared-memory queue by spinning on
    a core (no setting of vLLM 0.32 makes it sleep), and vLLM's thread binding keeps the model off
    that core (docs/PERFORMANCE.md, "Engine polling"). vLLM reads this when `LLM` is built; the
    user's own setting wins."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def _engine_cpu_seconds() -> float:
    """The CPU seconds of this engine process and of every process it started, so far: what an
    engine stage cost in all. That includes the processes that have ended (their seconds are
    their parent's `children_*` times): torch.compile's compile workers do most of a compiling
    engine's start, and without them "engine start" showed less than half of its CPU."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for process in (me, *me.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _pause_for_tests() -> None:
    """Inert unless TEST_PAUSE_ENV is set, which only the harness's fault tests do
    (tests/reliability): then the engine, started and about to generate, writes its pid to the
    file that TEST_PAUSE_ENV names and waits until it is ended. A test can so interrupt a run that
    is certainly generating, however loaded the machine: a small job may otherwise be done before
    the test's signal lands."""
    path = os.environ.get(TEST_PAUSE_ENV)
    if not path:
        return
    # The file appears whole: the test reads the pid as soon as it exists.
    write_atomically(Path(path), str(os.getpid()))
    while True:
        signal.pause()


def _generate(llm, requests: dict[str, list[Request | TokenRequest]], loras: dict
              ) -> dict[str, list[Answer]]:
    """One `llm.generate` call over the requests of every variant in `requests` (a LoRA variant's
    through its `LoRARequest` in `loras`); per variant, each request's answer."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    prompts, params, lora_requests, owners = [], [], [], []
    for name, variant_requests in requests.items():
        for request in variant_requests:
            s = request.sampling
            tokens = isinstance(request, TokenRequest)
            prompts.append(TokensPrompt(prompt_token_ids=list(request.prompt_ids)) if tokens
                           else request.prompt)
            params.append(SamplingParams(
                n=s.n, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                max_tokens=s.max_tokens,
                stop=list(s.stop), seed=s.seed, detokenize=not tokens,
                prompt_logprobs=1 if tokens and request.prompt_logprobs else None))
            lora_requests.append(loras.get(name))
            owners.append((name, request))
    outputs = llm.generate(prompts, params, lora_request=lora_requests)
    progress.current().advance(0, tokens=sum(len(choice.token_ids) for output in outputs
                                             for choice in output.outputs))
    results: dict[str, list[Answer]] = {name: [] for name in requests}
    for (name, request), output in zip(owners, outputs):
        results[name].append(_answer(request, output))
    return results


def _reload(llm, weights: str) -> None:
    """Load `weights` into the running engine in place, and renew what was derived from the
    weights before: the tied layers' processed weights (`reprocess_tied_layers`) and the prefix
    cache, whose entries hold the previous weights' keys and values."""
    # By its importable name: the engine runs as __main__, and vLLM pickles the function by name.
    from leakbench.serving import reprocess_tied_layers

    print(f"LeakBench: reloading weights in place from {weights}", flush=True)
    llm.collective_rpc("reload_weights", kwargs={"weights_path": weights})
    redone = llm.apply_model(reprocess_tied_layers)
    print(f"LeakBench: tied layers processed again: {redone}", flush=True)
    if not llm.reset_prefix_cache():
        raise RuntimeError("vLLM did not reset its prefix cache after reloading the weights")


def reprocess_tied_layers(model) -> list[str]:
    """Run the post-load processing again for the layers that share a weight (a tied LM head and
    the input embedding); return their names. Runs in vLLM's worker, after an in-place reload.

    vLLM's reload processes a tied weight only through the layer it loads it into, the embedding
    (a limitation its reload module states). The LM head keeps what its processing derived from
    the weights loaded at start: on the CPU, a packed copy of the weight that the GEMM kernel
    reads instead of the weight itself (`dispatch_cpu_unquantized_gemm`), so the logits would
    still come from the first weights. Processing both layers again from the shared tensor, which
    the reload filled, is what loading does at start; on GPUs it is a no-op for unquantized ones.
    """
    sharers: dict[int, list[str]] = {}
    for name, layer in model.named_modules():
        for parameter in layer.parameters(recurse=False):
            sharers.setdefault(id(parameter), []).append(name)
    tied = sorted({name for names in sharers.values() if len(names) > 1 for name in names})
    for name in tied:
        layer = model.get_submodule(name)
        method = getattr(layer, "quant_method", None)  # without one, loading processes nothing
        if method is not None:
            method.process_weights_after_loading(layer)
    return tied


def _answer(request: Request | TokenRequest, output) -> Answer:
    """What a vLLM `RequestOutput` answers `request` (leakbench.schema's `TokenAnswer`)."""
    if isinstance(request, Request):
        return [choice.text for choice in output.outputs]
    prompt_logprobs = None
    if request.prompt_logprobs:  # position t: {token id: Logprob}, the actual token and the top-1
        prompt_logprobs = [
            [ranked[token].logprob, next(i for i, lp in ranked.items() if lp.rank == 1)]
            for token, ranked in zip(request.prompt_ids[1:], output.prompt_logprobs[1:])]
    return {"token_ids": [list(choice.token_ids) for choice in output.outputs],
            "prompt_logprobs": prompt_logprobs}


def main(argv: list[str]) -> None:
    job_file, out_file = Path(argv[0]), Path(argv[1])
    try:
        _serve(EngineJob.from_json(job_file.read_text()), out_file)
    except UnknownEngineArg as err:
        _rejected_file(out_file).write_text(str(err))
        raise SystemExit(2) from None


if __name__ == "__main__":
    main(sys.argv[1:])
