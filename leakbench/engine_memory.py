"""The memory a vLLM engine on the CPU needs: what LeakBench asks vLLM for, and the check, before
training, that the machine has it.

vLLM 0.32's CPU worker (vllm/v1/worker/cpu_worker.py) sizes its KV cache one of two ways:

- with an explicit size, the engine argument `kv_cache_memory_bytes`, or VLLM_CPU_KVCACHE_SPACE in
  GiB (the CPU platform writes it into `kv_cache_memory_bytes`, over the engine argument), it
  checks only that this size is available when it allocates the cache, after loading the weights;
- without one, it checks at start that `gpu_memory_utilization` (0.92 by default) of the memory
  node is available, and gives the KV cache that share less what the worker process holds.

The second refuses to start wherever more than 8% of the node is in use, whatever the model. So
on the CPU LeakBench passes the explicit size its job can use (`kv_cache_bytes`), and the run
checks before training (`check_available`) that the engine fits in the memory available now.

Precedence: the user's `kv_cache_memory_bytes` or `gpu_memory_utilization` engine argument (the
engine process then unsets VLLM_CPU_KVCACHE_SPACE, which vLLM would apply over it), then
VLLM_CPU_KVCACHE_SPACE, then the derived size. On GPUs vLLM's own defaults apply.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from leakbench.schema import Request, TokenRequest

GiB = 1 << 30
KV_CACHE_SPACE_ENV = "VLLM_CPU_KVCACHE_SPACE"
USER_MEMORY_ARGS = ("kv_cache_memory_bytes", "gpu_memory_utilization")
DERIVED = "the job's requests"  # where a derived KV cache size comes from, as errors say

CPU_BLOCK_TOKENS = 128  # vLLM 0.32's KV cache block on the CPU: sequences take whole blocks
CPU_MAX_NUM_SEQS = 256  # vLLM 0.32's default max_num_seqs for `vllm.LLM` on the CPU, per worker
# A text prompt's tokens: each covers at least one byte of it, plus a BOS and a dummy prefix.
PROMPT_EXTRA_TOKENS = 2
# The loaded weights and the packed copy that vLLM's CPU matrix kernels read beside them.
WEIGHT_COPIES = 2
# What the engine's processes hold besides weights, KV cache and LoRA slots: the front end, the
# engine core and the worker, each with Python, torch and vLLM, and the compiled model. Measured
# on `micro` (docs/SCALING.md, "Engine memory on CPUs"), with room for larger models' graphs. On
# the CPU the engine now runs as one process (leakbench.serving), so this allowance is high there;
# it stays until the one-process engine is measured the same way.
ENGINE_PROCESSES_BYTES = 3 * GiB

_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2,
                "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


class EngineMemoryShort(RuntimeError):
    """The engine the run needs does not fit in the memory available; the message is one line
    with what it needs, what is available and what changes it."""


@dataclass(frozen=True)
class ModelShape:
    """What of a model sets an engine's memory."""

    parameters: int
    layers: int
    kv_heads: int
    head_dim: int
    hidden: int
    intermediate: int
    dtype: str  # the checkpoint's: what `dtype="auto"` loads
    max_positions: int

    @classmethod
    def of_config(cls, config: Mapping, parameters: int) -> ModelShape:
        """From a Hugging Face config.json's fields and the parameter count."""
        heads, hidden = config["num_attention_heads"], config["hidden_size"]
        return cls(parameters=parameters, layers=config["num_hidden_layers"],
                   kv_heads=config.get("num_key_value_heads") or heads,
                   head_dim=config.get("head_dim") or hidden // heads, hidden=hidden,
                   intermediate=config.get("intermediate_size") or 4 * hidden,
                   dtype=str(config.get("dtype") or config.get("torch_dtype") or "float32"),
                   max_positions=config.get("max_position_embeddings") or 4096)

    @classmethod
    def of_weights(cls, weights: Path) -> ModelShape:
        """From a weights directory: config.json, and the parameters the safetensors headers
        list (or, for other formats, the weight files' size over the checkpoint's dtype)."""
        config = json.loads((weights / "config.json").read_text())
        return cls.of_config(config, _parameters(weights, config))

    @classmethod
    def of_tiny(cls, config) -> ModelShape:
        """From a `leakbench.tiny.TinyConfig`, before the model is built: a Llama whose LM head
        is its input embedding."""
        h, i = config.hidden, config.intermediate
        parameters = config.vocab_size * h + config.layers * (4 * h * h + 3 * h * i + 2 * h) + h
        return cls.of_config({"num_attention_heads": config.heads, "hidden_size": h,
                              "num_hidden_layers": config.layers, "intermediate_size": i,
                              "max_position_embeddings": config.max_positions}, parameters)


def _parameters(weights: Path, config: Mapping) -> int:
    files = sorted(weights.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        count = 0
        for path in files:
            with safe_open(path, framework="numpy") as tensors:
                count += sum(math.prod(tensors.get_slice(name).get_shape())
                             for name in tensors.keys())
        return count
    size = sum(path.stat().st_size for path in weights.glob("*.bin"))
    return size // dtype_bytes(str(config.get("dtype") or config.get("torch_dtype") or "float32"))


def dtype_bytes(dtype: str) -> int:
    """Bytes per value of a vLLM dtype name; 4 for a name not known here (the most it can be)."""
    return _DTYPE_BYTES.get(dtype.removeprefix("torch."), 4)


def sequence_tokens(request: Request | TokenRequest, max_model_len: int) -> int:
    """The most KV cache one sequence of `request` takes, in tokens of whole blocks."""
    if isinstance(request, TokenRequest):
        prompt = len(request.prompt_ids)
    else:
        prompt = len(request.prompt.encode()) + PROMPT_EXTRA_TOKENS
    return _whole_blocks(min(max_model_len, prompt + request.sampling.max_tokens))


def _whole_blocks(tokens: int) -> int:
    return -(-tokens // CPU_BLOCK_TOKENS) * CPU_BLOCK_TOKENS


def _world_size(kwargs: Mapping) -> int:
    return kwargs.get("tensor_parallel_size", 1) * kwargs.get("pipeline_parallel_size", 1)


def _model_dtype(shape: ModelShape, kwargs: Mapping) -> str:
    dtype = str(kwargs.get("dtype", "auto"))
    return shape.dtype if dtype == "auto" else dtype


def kv_cache_bytes(shape: ModelShape, requests: Iterable[Request | TokenRequest],
                   kwargs: Mapping) -> int:
    """The KV cache, per worker, that `vllm.LLM(**kwargs)` can use on `requests`: as many of the
    longest sequence as it runs at once (`max_num_seqs`, at most every sequence asked: a
    request's `n` samples are `n` sequences), and at least one sequence of `max_model_len`, which
    vLLM checks at start; plus the block vLLM's block pool keeps back (its null block). Keys and
    values of every layer's KV heads, in the cache's dtype."""
    max_model_len = kwargs["max_model_len"]
    requests = list(requests)
    at_once = kwargs.get("max_num_seqs") or CPU_MAX_NUM_SEQS * _world_size(kwargs)
    sequences = sum(request.sampling.n for request in requests)
    longest = max((sequence_tokens(r, max_model_len) for r in requests), default=0)
    tokens = max(_whole_blocks(max_model_len), min(at_once, sequences) * longest)
    tokens += CPU_BLOCK_TOKENS
    cache_dtype = str(kwargs.get("kv_cache_dtype", "auto"))
    value_bytes = dtype_bytes(_model_dtype(shape, kwargs) if cache_dtype == "auto"
                              else cache_dtype)
    per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * value_bytes
    return -(-tokens * per_token // _world_size(kwargs))


def engine_runs_on_cpu() -> bool:
    """Whether vLLM will run on the CPU: there is no CUDA device (vLLM's CUDA build needs one)."""
    import torch

    return not torch.cuda.is_available()


def kv_cache_space_env() -> int | None:
    """VLLM_CPU_KVCACHE_SPACE in bytes when set (vLLM reads it only when not empty), else None."""
    value = os.environ.get(KV_CACHE_SPACE_ENV, "")
    return int(value) * GiB if value else None


@dataclass(frozen=True)
class EngineNeed:
    """The memory an engine needs, in bytes, and where its KV cache size comes from."""

    weights: int
    kv_cache: int
    lora: int
    processes: int
    kv_source: str  # DERIVED, KV_CACHE_SPACE_ENV or "--engine-arg kv_cache_memory_bytes"

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.lora + self.processes


def engine_need(shape: ModelShape, requests: Iterable[Request | TokenRequest],
                kwargs: Mapping) -> EngineNeed:
    """What `vllm.LLM(**kwargs)` on the CPU needs for `requests` when its KV cache size is
    explicit (see the module's docstring for which one applies)."""
    weights = shape.parameters * dtype_bytes(_model_dtype(shape, kwargs)) * WEIGHT_COPIES
    lora = 0
    if kwargs.get("enable_lora"):  # every slot, and vLLM's CPU cache of the loaded adapters
        per_rank = shape.layers * (11 * shape.hidden + 3 * shape.intermediate)
        lora = (2 * kwargs.get("max_loras", 1) * kwargs.get("max_lora_rank", 16) * per_rank
                * dtype_bytes(_model_dtype(shape, kwargs)))
    if "kv_cache_memory_bytes" in kwargs:
        source, kv = "--engine-arg kv_cache_memory_bytes", kwargs["kv_cache_memory_bytes"]
        kv *= _world_size(kwargs)
    elif kv_cache_space_env() is not None:
        source, kv = KV_CACHE_SPACE_ENV, kv_cache_space_env() * _world_size(kwargs)
    else:
        source = DERIVED
        kv = kv_cache_bytes(shape, requests, kwargs) * _world_size(kwargs)
    return EngineNeed(weights, kv, lora, ENGINE_PROCESSES_BYTES, source)


@dataclass(frozen=True)
class MemoryNow:
    """Memory as vLLM's CPU worker reads it at start, in bytes."""

    available: int
    total: int

    @classmethod
    def read(cls) -> MemoryNow:
        """The memory node of this process's first allowed CPU (vLLM binds its worker there):
        free, file-backed and reclaimable slab memory of the node's meminfo, out of its
        MemTotal; the machine's (psutil) without per-node meminfo; within the cgroup's limit
        when one is set."""
        meminfo = _node_meminfo()
        if meminfo is None:
            import psutil

            memory = psutil.virtual_memory()
            available, total = memory.available, memory.total
        else:
            total = meminfo["MemTotal"]
            available = (meminfo["MemFree"] + meminfo["Active(file)"] + meminfo["Inactive(file)"]
                         + meminfo["SReclaimable"])
        limit, usage = _cgroup_limit_and_usage()
        if limit is not None and limit < total:
            total, available = limit, max(0, min(available, limit - (usage or 0)))
        return cls(available, total)


def _node_meminfo() -> dict[str, int] | None:
    """The meminfo of the memory node of this process's first allowed CPU, in bytes, or None."""
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    nodes = sorted(Path(f"/sys/devices/system/cpu/cpu{cpu}").glob("node[0-9]*"))
    node = nodes[0].name if nodes else "node0"
    try:
        lines = Path(f"/sys/devices/system/node/{node}/meminfo").read_text().splitlines()
    except OSError:
        return None
    return {parts[2].rstrip(":"): int(parts[3]) * 1024  # "Node 0 MemTotal: 97421888 kB"
            for parts in (line.split() for line in lines) if len(parts) >= 4}


def _cgroup_limit_and_usage() -> tuple[int | None, int | None]:
    """The cgroup's memory limit and usage (v2, else v1; no limit: None, None)."""
    limit = _read_int("/sys/fs/cgroup/memory.max")
    if limit is not None:
        return limit, _read_int("/sys/fs/cgroup/memory.current")
    limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    if limit is None or limit >= 1 << 62:  # v1 writes a huge number for no limit
        return None, None
    return limit, _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):  # absent, or "max" (no limit)
        return None


def check_available(shape: ModelShape, requests: Iterable[Request | TokenRequest],
                    kwargs: Mapping, memory: MemoryNow) -> None:
    """Raise EngineMemoryShort unless `vllm.LLM(**kwargs)` on the CPU would start with `memory`:
    with the user's `gpu_memory_utilization` and no explicit KV cache size, vLLM's own start
    check; else the `engine_need` of `requests`."""
    if "gpu_memory_utilization" in kwargs and "kv_cache_memory_bytes" not in kwargs:
        fraction = kwargs["gpu_memory_utilization"]
        asked = math.ceil(memory.total * fraction)
        if asked > memory.available:
            fits = math.floor(memory.available / memory.total * 100) / 100
            raise EngineMemoryShort(
                f"the vLLM engine needs gpu_memory_utilization={fraction} of {_gib(memory.total)} "
                f"GiB = {_gib(asked)} GiB of memory but {_gib(memory.available)} GiB is available "
                f"now: free memory, or lower --engine-arg gpu_memory_utilization (at most {fits} "
                "fits)")
        return
    need = engine_need(shape, requests, kwargs)
    if need.total <= memory.available:
        return
    room = (memory.available - (need.total - need.kv_cache)) // _world_size(kwargs)
    if need.kv_source == KV_CACHE_SPACE_ENV:
        fits = f"; at most {room // GiB} fits" if room >= GiB else ""
        change = f"lower {KV_CACHE_SPACE_ENV} (GiB{fits})"
    else:
        fits = f" (at most {room} fits)" if room > 0 else ""
        change = (f"set --engine-arg kv_cache_memory_bytes lower{fits}, or max_num_seqs or "
                  "max_model_len")
    raise EngineMemoryShort(
        f"the vLLM engine needs {_gib(need.total)} GiB of memory (weights {_gib(need.weights)}, "
        f"KV cache {_gib(need.kv_cache)} from {need.kv_source}, LoRA {_gib(need.lora)}, "
        f"processes {_gib(need.processes)}) but {_gib(memory.available)} GiB is available now: "
        f"free memory, or {change}")


def _gib(size: int) -> str:
    return f"{size / GiB:.2f}"
