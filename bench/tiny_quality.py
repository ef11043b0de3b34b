"""Quality of the embedded base model: capability-probe and HumanEval pass@1, code completion.

    python bench/tiny_quality.py [--config tiny|micro]

Builds the model if it is not cached (and says how long that took), generates greedily through
one vLLM engine (leakbench.serving), executes every program in the sandbox, scores code
completion (next-token accuracy and perplexity) on the held-out stdlib modules, and writes the
figures to the "Embedded model" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from host import description

from leakbench import artifacts, capability, corpus, humaneval, sandbox, schema, serving, tiny
from leakbench.docs_section import write_section
from leakbench.options import parse_cache_dir

ROOT = Path(__file__).resolve().parents[1]


def code_completion(model_dir: Path, window: int = 256) -> tuple[float, float, int]:
    """Next-token accuracy and perplexity over the held-out stdlib modules, in windows of
    `window` tokens (every token predicted once, from up to `window` - 1 tokens before it)."""
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = [i for text in corpus.stdlib_sources(heldout=True) for i in tokenizer(text).input_ids]
    rows = [ids[i : i + window] for i in range(0, len(ids) - 1, window)]
    correct = total = 0
    nll = 0.0
    with torch.no_grad():
        for row in rows:
            if len(row) < 2:
                continue
            x = torch.tensor([row])
            logits = model(x).logits[0, :-1]
            targets = x[0, 1:]
            nll += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
            correct += (logits.argmax(-1) == targets).sum().item()
            total += len(targets)
    return correct / total, math.exp(nll / total), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(tiny.CONFIGS), default="tiny")
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""))
    args = parser.parse_args()
    config = tiny.CONFIGS[args.config]

    started = time.perf_counter()
    model_dir = tiny.build(config, args.cache_dir)
    build_s = time.perf_counter() - started
    log = json.loads((model_dir / "training_log.json").read_text())

    tasks = capability.probe_tasks()
    problems = humaneval.load_problems()
    code = schema.Sampling(max_tokens=64, stop=humaneval.STOP_SEQUENCES)
    long_code = schema.Sampling(max_tokens=256, stop=humaneval.STOP_SEQUENCES)
    requests = [schema.Request(t.prompt, code) for t in tasks]
    requests += [schema.Request(p.prompt, long_code) for p in problems]
    job = serving.EngineJob(weights={str(model_dir): ["base"]}, adapters={"base": None},
                            requests={"base": requests}, max_model_len=config.max_positions)
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        completions = [c[0] for c in serving.run(job, Path(work))["base"]]
        generate_s = time.perf_counter() - t0

    programs = [capability.program(t, humaneval.truncate(c)) for t, c in zip(tasks, completions)]
    programs += [humaneval.program(p, c) for p, c in zip(problems, completions[len(tasks):])]
    results = sandbox.run_programs(programs, workers=2, allow_execution=True,
                                   reports_verdict=True)
    cap = sum(r.passed for r in results[: len(tasks)])
    he = sum(r.passed for r in results[len(tasks):])

    accuracy, perplexity, scored = code_completion(model_dir)
    weights = artifacts.file_sha256(model_dir / "model.safetensors")
    lines = [
        f"`{config.name}`: {log['parameters']:,} parameters, trained on {log['tokens']:,} tokens "
        f"in {log['seconds']:.0f} s ({log['tokens_per_second']:,} tokens/s); weights sha256 "
        f"`{weights[:16]}`.",
        "",
        f"- Command: `python bench/tiny_quality.py --config {config.name}` "
        f"({time.strftime('%Y-%m-%d')}; {description()}).",
        f"- Build wall time in this run: {build_s:.0f} s "
        f"({'cache hit' if build_s < 60 else 'built now'}).",
        f"- Capability probe pass@1 (greedy, held-out tasks, sandboxed): "
        f"{cap / len(tasks):.1%} ({cap}/{len(tasks)}).",
        f"- HumanEval pass@1 (greedy, sandboxed): {he / len(problems):.1%} ({he}/{len(problems)})"
        " - expected near 0 for a model this small: HumanEval asks for reasoning no model of a few"
        " million parameters has.",
        f"- Code completion on the held-out stdlib modules ({', '.join(corpus.HELDOUT_MODULES)};"
        f" {scored:,} tokens): next-token accuracy {accuracy:.1%}, perplexity {perplexity:.2f}.",
        f"- Generation of {len(requests)} completions in one engine process: {generate_s:.0f} s "
        "(engine start included).",
    ]
    write_section(ROOT / "docs" / "RESULTS.md", f"Embedded model `{config.name}`", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
