"""The engine's memory on the CPU: the KV cache size derived from the job, the check before
training, and an engine that starts beside a process holding a share of the memory that vLLM's
default (92% of the memory node) would not get."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from leakbench import endpoint, engine_memory, models, pipeline, serving, tiny
from leakbench.engine_memory import EngineMemoryShort, GiB, MemoryNow, ModelShape
from leakbench.probes import PrivacyData
from leakbench.schema import Request, Sampling, TokenRequest
from leakbench.serving import EngineJob

MiB = 1 << 20
# 4 layers x 4 KV heads x 64 values, keys and values in float32: 8 KiB per token.
SHAPE = ModelShape(parameters=1_000_000, layers=4, kv_heads=4, head_dim=64, hidden=256,
                   intermediate=688, dtype="float32", max_positions=2048)
PROBE = Request("x" * 100, Sampling(max_tokens=48))  # 100 + 2 + 48 tokens at most: 2 blocks


@pytest.fixture(autouse=True)
def _no_kv_cache_space(monkeypatch):
    """tox sets VLLM_CPU_KVCACHE_SPACE; these tests set it where they mean to."""
    monkeypatch.delenv(engine_memory.KV_CACHE_SPACE_ENV, raising=False)


@pytest.mark.training
def test_a_tiny_models_shape_is_known_before_it_is_built(micro_model):
    assert ModelShape.of_tiny(tiny.MICRO) == ModelShape.of_weights(micro_model)


@pytest.mark.parametrize(
    ("requests", "kwargs", "tokens"),
    [
        # few short sequences: one sequence of max_model_len, which vLLM checks at start
        ([PROBE] * 3, {}, 2048),
        # many: max_num_seqs (256 on the CPU) of the longest, in whole blocks of 128 tokens
        ([PROBE] * 1000, {}, 256 * 256),
        ([PROBE] * 1000, {"max_num_seqs": 64}, 64 * 256),
        ([PROBE] * 1000, {"max_model_len": 100}, 256 * 128),  # a sequence ends at max_model_len
        # n samples are n sequences
        ([Request("x" * 100, Sampling(n=10, max_tokens=48))] * 20, {}, 200 * 256),
        # a token request's prompt is its ids; the longest request sets every sequence's room
        ([PROBE] * 299 + [TokenRequest(tuple(range(300)), Sampling(max_tokens=1))], {},
         256 * 384),
    ],
)
def test_the_kv_cache_holds_what_the_engine_runs_at_once(requests, kwargs, tokens):
    kwargs = {"dtype": "float32", "max_model_len": 2048, **kwargs}
    null_block = 128  # vLLM's block pool keeps one block back
    assert engine_memory.kv_cache_bytes(SHAPE, requests, kwargs) == (tokens + null_block) * 8192


def test_the_kv_cache_follows_the_dtypes():
    float32 = engine_memory.kv_cache_bytes(SHAPE, [PROBE] * 1000,
                                           {"dtype": "float32", "max_model_len": 2048})
    assert engine_memory.kv_cache_bytes(
        SHAPE, [PROBE] * 1000, {"dtype": "bfloat16", "max_model_len": 2048}) == float32 // 2
    assert engine_memory.kv_cache_bytes(  # "auto": the checkpoint's dtype
        SHAPE, [PROBE] * 1000, {"dtype": "auto", "max_model_len": 2048}) == float32
    assert engine_memory.kv_cache_bytes(SHAPE, [PROBE] * 1000, {
        "dtype": "float32", "kv_cache_dtype": "fp8", "max_model_len": 2048}) == float32 // 4


def test_the_need_adds_weights_lora_and_the_processes(monkeypatch):
    kwargs = {"dtype": "float32", "max_model_len": 2048}
    need = engine_memory.engine_need(SHAPE, [PROBE] * 1000, kwargs)
    assert need.weights == 1_000_000 * 4 * engine_memory.WEIGHT_COPIES
    assert (need.kv_cache, need.kv_source) == (513 * MiB, engine_memory.DERIVED)
    assert need.lora == 0 and need.processes == engine_memory.ENGINE_PROCESSES_BYTES
    lora = engine_memory.engine_need(SHAPE, [PROBE], {**kwargs, "enable_lora": True,
                                                      "max_loras": 2, "max_lora_rank": 16})
    assert lora.lora == 2 * 2 * 16 * 4 * (11 * 256 + 3 * 688) * 4
    monkeypatch.setenv(engine_memory.KV_CACHE_SPACE_ENV, "3")
    assert engine_memory.engine_need(SHAPE, [PROBE], kwargs).kv_cache == 3 * GiB
    user = engine_memory.engine_need(SHAPE, [PROBE], {**kwargs, "kv_cache_memory_bytes": 5})
    assert (user.kv_cache, user.kv_source) == (5, "--engine-arg kv_cache_memory_bytes")


def _job(weights: Path, engine_args: dict | None = None) -> EngineJob:
    return EngineJob(weights={str(weights): ["none"]}, adapters={"none": None},
                     requests={"none": [Request("def add(a, b):\n", Sampling(max_tokens=8))] * 2},
                     max_model_len=256, engine_args=engine_args or {})


@pytest.mark.training
def test_on_the_cpu_the_engine_gets_the_derived_kv_cache_unless_the_user_sized_it(
        micro_model, monkeypatch):
    job = _job(micro_model)
    kwargs = serving.engine_kwargs(job, on_cpu=True)
    assert kwargs["kv_cache_memory_bytes"] == engine_memory.kv_cache_bytes(
        ModelShape.of_weights(micro_model), job.requests["none"], kwargs)
    assert "gpu_memory_utilization" not in kwargs  # vLLM's CPU worker ignores it then
    assert "kv_cache_memory_bytes" not in serving.engine_kwargs(job, on_cpu=False)  # GPUs: vLLM's
    for user in ({"kv_cache_memory_bytes": 1 << 30}, {"gpu_memory_utilization": 0.5}):
        assert serving.engine_kwargs(_job(micro_model, user), on_cpu=True) == {
            **serving.engine_kwargs(_job(micro_model), on_cpu=False), **user}
    monkeypatch.setenv(engine_memory.KV_CACHE_SPACE_ENV, "2")  # vLLM applies it: nothing derived
    assert "kv_cache_memory_bytes" not in serving.engine_kwargs(job, on_cpu=True)


def test_vllms_default_share_fails_where_the_issue_found_it():
    memory = MemoryNow(available=int(9.17 * GiB), total=int(15.46 * GiB))
    with pytest.raises(EngineMemoryShort) as err:
        engine_memory.check_available(SHAPE, [PROBE], {"gpu_memory_utilization": 0.92}, memory)
    assert str(err.value) == (
        "the vLLM engine needs gpu_memory_utilization=0.92 of 15.46 GiB = 14.22 GiB of memory but "
        "9.17 GiB is available now: free memory, or lower --engine-arg gpu_memory_utilization (at "
        "most 0.59 fits)")
    engine_memory.check_available(SHAPE, [PROBE], {"dtype": "float32", "max_model_len": 2048},
                                  memory)  # the derived size fits


def test_the_memory_read_is_vllms(monkeypatch):
    from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info

    ours = MemoryNow.read()
    theirs = get_memory_node_info(get_allowed_cpu_list()[0].numa_node)
    assert ours.total == theirs.total_memory
    assert abs(ours.available - theirs.available_memory) < 256 * MiB  # read moments apart


@pytest.fixture
def short_of_memory(monkeypatch):
    """The machine as the check sees it: on the CPU, with 1 GiB available of 16."""
    monkeypatch.setattr(engine_memory, "engine_runs_on_cpu", lambda: True)
    monkeypatch.setattr(MemoryNow, "read", classmethod(lambda cls: cls(1 * GiB, 16 * GiB)))


def _small_data(small_cases) -> PrivacyData:
    return PrivacyData.load(small_cases(4, 2))


def test_the_check_is_one_line_naming_what_changes_it(short_of_memory, small_cases, monkeypatch):
    micro, data = models.lookup("micro"), _small_data(small_cases)
    needed = {"none": [PROBE] * 10, "kl": [PROBE] * 10}
    with pytest.raises(EngineMemoryShort) as err:
        pipeline.check_engine_memory(micro, ("none", "kl"), data, needed, {}, memorization=True)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("the vLLM engine needs 3.")
    assert "from the job's requests" in message and "but 1.00 GiB is available now" in message
    assert message.endswith("free memory, or set --engine-arg kv_cache_memory_bytes lower, or "
                            "max_num_seqs or max_model_len")
    monkeypatch.setenv(engine_memory.KV_CACHE_SPACE_ENV, "2")
    with pytest.raises(EngineMemoryShort, match=r"KV cache 2\.00 from VLLM_CPU_KVCACHE_SPACE, .* "
                                                r"lower VLLM_CPU_KVCACHE_SPACE \(GiB\)$"):
        pipeline.check_engine_memory(micro, ("none",), data, needed, {}, memorization=False)


def test_a_run_short_of_memory_stops_before_training(short_of_memory, small_cases, tmp_path,
                                                     monkeypatch):
    def build_variants(*args, **kwargs):
        raise AssertionError("trained before the memory check")

    monkeypatch.setattr(pipeline, "build_variants", build_variants)
    micro, data = models.lookup("micro"), _small_data(small_cases)
    with pytest.raises(EngineMemoryShort):
        pipeline.prepare(micro, ("none",), data, {"none": [PROBE]}, tmp_path, rebuild=False,
                         run_id="r")
    monkeypatch.setattr(endpoint.Endpoint, "generate",  # --endpoint: no engine
                        lambda self, requests: {n: [["x"]] * len(rs) for n, rs in requests.items()})
    pipeline.prepare(micro, ("none",), data, {"none": [PROBE]}, tmp_path, rebuild=False,
                     run_id="r", endpoint_url="http://localhost:1")


@pytest.mark.engine
@pytest.mark.training
def test_the_benchmark_stops_with_the_one_line(tmp_path):
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmark", "--model=micro", "--algo=none",
         "-p", "no:cacheprovider", f"--cache-dir={tmp_path}", "-k", "direct_leak"],
        cwd=root, capture_output=True, text=True, timeout=300,
        env={**os.environ, engine_memory.KV_CACHE_SPACE_ENV: "100000"})
    assert run.returncode == 3, run.stdout[-2000:]
    assert "from VLLM_CPU_KVCACHE_SPACE" in run.stdout and "is available now" in run.stdout
    assert not (tmp_path / "base-micro").exists()  # nothing was trained


# --- starts an engine (about 30 s and 2 GiB here) ----------------------------------------------

SLACK = 512 * MiB  # what the machine's other processes may take while the engine starts


def _hold(size: int) -> subprocess.Popen:
    """A process that holds `size` bytes, every page written, until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys; held = b'1' * {size}; print('held', flush=True); "
                               "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    return holder


@pytest.mark.engine
@pytest.mark.training
def test_an_engine_starts_beside_a_process_holding_half_the_memory(micro_model, tmp_path):
    job = _job(micro_model)
    need = engine_memory.engine_need(ModelShape.of_weights(micro_model), job.requests["none"],
                                     serving.engine_kwargs(job, on_cpu=True))
    memory = MemoryNow.read()
    held = min(memory.total // 2, memory.available - need.total - SLACK)
    if held <= 0:
        pytest.skip(f"{memory.available / GiB:.2f} GiB available: too little to hold any beside "
                    f"the engine's {need.total / GiB:.2f} GiB")
    holder = _hold(held)
    try:
        now = MemoryNow.read()
        with pytest.raises(EngineMemoryShort):  # vLLM's default would not start
            engine_memory.check_available(SHAPE, [], {"gpu_memory_utilization": 0.92}, now)
        results = serving.run(job, tmp_path / "engine", timeout_s=300)
    finally:
        holder.stdin.close()
        holder.wait()
    assert [len(choices) for choices in results["none"]] == [1, 1]
    log = (tmp_path / "engine" / "engine.log").read_text()
    assert f"'kv_cache_memory_bytes': {need.kv_cache}" in log
    assert "Explicitly set" in log  # vLLM's CPU worker took the size, not a share of the memory
