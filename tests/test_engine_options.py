"""vLLM engine arguments: --engine-arg and --engine-config, parsed, passed into every EngineJob,
and applied by a real engine; a name vLLM does not know is one line that lists the valid ones."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from leakbench import pipeline, serving
from leakbench.engine_options import parse_engine_arg
from leakbench.options import OptionError
from leakbench.run_options import parse_options
from leakbench.schema import Request, Sampling
from leakbench.serving import EngineFailed, EngineJob
from leakbench.unlearn import Variant

pytest_plugins = ["pytester"]


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tensor_parallel_size=2", ("tensor_parallel_size", 2)),
        ("gpu_memory_utilization=0.85", ("gpu_memory_utilization", 0.85)),
        ("enforce_eager=true", ("enforce_eager", True)),
        ("dtype=bfloat16", ("dtype", "bfloat16")),
        ("distributed_executor_backend=ray", ("distributed_executor_backend", "ray")),
        ('compilation_config={"level": 0}', ("compilation_config", {"level": 0})),
        ('served_model_name="7"', ("served_model_name", "7")),
        ("max-model-len=8192", ("max_model_len", 8192)),
        ("hf_overrides=a=b", ("hf_overrides", "a=b")),
    ],
)
def test_values_are_json_when_they_parse_else_strings(text, expected):
    assert parse_engine_arg(text) == expected


def test_the_command_line_overrides_the_config_file(tmp_path):
    config = _config(tmp_path, '[engine]\ntensor_parallel_size = 8\ndtype = "bfloat16"\n'
                               "enforce-eager = true\n")
    options = parse_options({"engine_config": str(config),
                             "engine_arg": ["tensor_parallel_size=4", "max_num_seqs=256"]})
    assert options.engine_args == {"tensor_parallel_size": 4, "dtype": "bfloat16",
                                   "enforce_eager": True, "max_num_seqs": 256}
    assert parse_options({}).engine_args == {}


@pytest.mark.parametrize(
    ("raw", "option", "says"),
    [
        ({"engine_arg": ["tensor_parallel_size"]}, "--engine-arg", "is not KEY=VALUE"),
        ({"engine_arg": ["=2"]}, "--engine-arg", "'' is not an engine argument name"),
        ({"engine_arg": ["tp size=2"]}, "--engine-arg", "'tp size' is not an engine argument"),
        ({"engine_arg": ["enforce_eager=False"]}, "--engine-arg", "write true, false or null"),
        ({"engine_arg": ["model=/weights"]}, "--engine-arg", "model is set by LeakBench"),
        ({"engine_arg": ["enable_lora=false"]}, "--engine-arg", "enable_lora is set by LeakBench"),
        ({"engine_config": "missing.toml"}, "--engine-config", "cannot read"),
        ({"engine_config": "[engine]\nx ="}, "--engine-config", "is not TOML: "),
        ({"engine_config": "tensor_parallel_size = 2\n"}, "--engine-config",
         "must hold an [engine] table"),
        ({"engine_config": "[engines]\ntensor_parallel_size = 2\n"}, "--engine-config",
         "found: engines"),
        ({"engine_config": "[engine]\nmodel = 'x'\n"}, "--engine-config", "model is set"),
        ({"engine_config": "[engine]\nwhen = 2024-01-01\n"}, "--engine-config", "dates and times"),
        ({"engine_arg": ["max_num_seqs=4"], "endpoint": "http://h:8000"},
         "--engine-arg/--engine-config", "no effect with --endpoint"),
    ],
)
def test_errors_are_one_line_naming_the_option(tmp_path, raw, option, says):
    if "engine_config" in raw and raw["engine_config"] != "missing.toml":
        raw = {**raw, "engine_config": str(_config(tmp_path, raw["engine_config"]))}
    with pytest.raises(OptionError) as err:
        parse_options({"cache_dir": str(tmp_path), **raw})
    message = str(err.value)
    assert message.startswith(f"{option}: ") and says in message and "\n" not in message


def test_the_plugin_takes_both_options(benchmark_pytester, tmp_path):
    config = _config(tmp_path, "[engine]\ntensor_parallel_size = 8\n")
    benchmark_pytester.makepyfile(
        """
        def test_engine_args(run_options):
            assert run_options.engine_args == {"tensor_parallel_size": 2, "enforce_eager": True}
        """
    )
    result = benchmark_pytester.runpytest(f"--engine-config={config}", "--engine-arg",
                                          "tensor_parallel_size=2",
                                          "--engine-arg=enforce_eager=true")
    result.assert_outcomes(passed=1)
    bad = benchmark_pytester.runpytest("--engine-arg=model=x")
    assert [line for line in bad.errlines if line.startswith("ERROR:")] == [
        "ERROR: --engine-arg: model is set by LeakBench for each engine (the weights and adapters "
        "of the variants it serves); reserved: model, enable_lora"]


def _variant(tmp_path: Path, name: str, adapter: bool) -> Variant:
    weights = tmp_path / "planted"
    weights.mkdir(exist_ok=True)
    (weights / "config.json").write_text(json.dumps({"max_position_embeddings": 16384}))
    return Variant(name, weights, tmp_path / name if adapter else None, key=f"key-{name}")


def test_engine_args_reach_the_engine_job_and_override_its_defaults(tmp_path):
    variants = {"none": _variant(tmp_path, "none", False), "kl": _variant(tmp_path, "kl", True)}
    requests = {"none": [Request("p", Sampling())], "kl": [Request("p", Sampling())]}
    engine_args = {"tensor_parallel_size": 2, "dtype": "bfloat16"}
    job = pipeline.engine_job({tmp_path / "planted": ["none", "kl"]}, requests, variants,
                              engine_args)
    assert job.engine_args == engine_args and job.engine_args is not engine_args
    assert job.adapters == {"none": None, "kl": str(tmp_path / "kl")}
    assert (job.max_model_len, job.dtype) == (4096, "float32")
    job = EngineJob.from_json(job.to_json())
    kwargs = serving.engine_kwargs(job)
    assert kwargs["tensor_parallel_size"] == 2 and kwargs["dtype"] == "bfloat16"
    assert kwargs["max_model_len"] == 4096 and kwargs["enable_lora"] is True
    longer = EngineJob(**{**vars(job), "engine_args": {"max_model_len": 16384}})
    assert serving.engine_kwargs(longer)["max_model_len"] == 16384


def test_seeded_sampling_on_the_cpu_prefills_whole_prompts(monkeypatch):
    # vLLM 0.32 rewinds a seeded request's generator after a partial prefill, which a CPU
    # generator cannot do: the engine died mid-run on the first sampled benchmark run.
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # sized: no weights read for the KV cache
    def job(sampling, engine_args=None):
        return EngineJob(weights={"w": ["none"]}, adapters={"none": None},
                         requests={"none": [Request("p", Sampling()), Request("q", sampling)]},
                         max_model_len=2048, engine_args=engine_args or {})

    sampled = Sampling(n=10, temperature=0.8, seed=0)
    kwargs = serving.engine_kwargs(job(sampled), on_cpu=True)
    assert kwargs["enable_chunked_prefill"] is False
    assert kwargs["max_num_batched_tokens"] >= 2048
    assert "enable_chunked_prefill" not in serving.engine_kwargs(job(sampled), on_cpu=False)
    assert "enable_chunked_prefill" not in serving.engine_kwargs(job(Sampling()), on_cpu=True)
    user = serving.engine_kwargs(job(sampled, {"max_num_batched_tokens": 4096}), on_cpu=True)
    assert user["max_num_batched_tokens"] == 4096  # the user's engine arguments still win


def test_completions_are_kept_per_engine_args(tmp_path):
    variant = _variant(tmp_path, "kl", True)
    plain = pipeline.completions_dir(tmp_path, variant, {})
    assert plain == tmp_path / "completions" / "key-kl"
    assert pipeline.completions_dir(tmp_path, variant, None) == plain
    bf16 = pipeline.completions_dir(tmp_path, variant, {"dtype": "bfloat16"})
    assert bf16 != plain and bf16 == pipeline.completions_dir(tmp_path, variant,
                                                              {"dtype": "bfloat16"})


def test_an_unknown_name_is_one_line_with_a_hint_and_the_valid_names():
    with pytest.raises(serving.UnknownEngineArg) as err:
        serving.check_engine_args(["max_num_seqs", "max_num_seq"], ["max_num_seqs", "dtype"])
    assert str(err.value) == ("--engine-arg: vLLM has no engine argument 'max_num_seq' (did you "
                              "mean max_num_seqs?); valid (vllm.EngineArgs): dtype, max_num_seqs")


def _job(weights: Path, engine_args: dict) -> EngineJob:
    return EngineJob(weights={str(weights): ["none"]}, adapters={"none": None},
                     requests={"none": [Request("def add(a, b):\n", Sampling(max_tokens=8))] * 2},
                     max_model_len=256, engine_args=engine_args)


@pytest.mark.engine
@pytest.mark.training
def test_an_engine_applies_the_engine_args(micro_model, tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    job = _job(micro_model, {"max_num_seqs": 4, "max_model_len": 128})
    results = serving.run(job, tmp_path / "engine", timeout_s=300)
    assert [len(choices) for choices in results["none"]] == [1, 1]
    applied = next(line for line in (tmp_path / "engine" / "engine.log").read_text().splitlines()
                   if "non-default args" in line)  # vLLM's own record of what it was given
    assert "'max_num_seqs': 4" in applied and "'max_model_len': 128" in applied


@pytest.mark.engine
@pytest.mark.training
def test_an_engine_rejects_an_unknown_name_in_one_line(micro_model, tmp_path):
    with pytest.raises(EngineFailed) as err:
        serving.run(_job(micro_model, {"max_num_seq": 4}), tmp_path / "engine", timeout_s=300)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("--engine-arg: vLLM has no engine argument 'max_num_seq' (did you "
                              "mean max_num_seqs?); valid (vllm.EngineArgs): ")
    assert "tensor_parallel_size" in message and "gpu_memory_utilization" in message


@pytest.mark.slow
def test_the_gpu_check_stops_at_once_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: run scripts/gpu_check.py itself")
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.startswith("gpu_check: no CUDA device (torch ") and run.stdout == ""
