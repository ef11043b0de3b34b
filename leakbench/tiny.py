"""The embedded default model `tiny`: a small Llama the project builds itself, offline.

Read top to bottom: the configurations, the corpus, the training loop, the build. The tokenizer is a
BPE trained on the corpus (leakbench.tokenizer); the model is a transformers `LlamaForCausalLM`, so
transformers, PEFT and vLLM all load it. Pretraining mixes the interpreter's standard library
(leakbench.corpus) with the capability tasks (leakbench.capability). Everything is seeded, and the
result is a content-addressed artifact (leakbench.artifacts), built once per inputs and reused.

`micro` is the same code at toy size, for the test suite.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from leakbench import artifacts, corpus, progress
from leakbench import tokenizer as bpe
from leakbench.precision import cpu_precision


@dataclass(frozen=True)
class TinyConfig:
    name: str
    vocab_size: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    seq_len: int  # training block length
    batch_size: int  # blocks per step
    steps: int
    lr: float
    task_fraction: float  # share of each batch drawn from capability tasks, the rest from stdlib
    stdlib_files: int | None = None  # None: every training module
    warmup_steps: int = 50
    max_positions: int = 2048  # what vLLM may serve: HumanEval prompts + completions fit
    seed: int = 0


TINY = TinyConfig("tiny", vocab_size=2048, hidden=256, layers=4, heads=4, intermediate=688,
                  seq_len=256, batch_size=16, steps=500, lr=2e-3, task_fraction=0.8)
MICRO = TinyConfig("micro", vocab_size=512, hidden=128, layers=2, heads=2, intermediate=344,
                   seq_len=128, batch_size=8, steps=150, lr=3e-3, task_fraction=0.6,
                   stdlib_files=12, warmup_steps=10, max_positions=1024)
CONFIGS = {c.name: c for c in (TINY, MICRO)}


def training_texts(config: TinyConfig) -> tuple[list[str], list[str]]:
    stdlib = corpus.stdlib_sources(heldout=False)
    if config.stdlib_files is not None:
        stdlib = stdlib[: config.stdlib_files]
    return stdlib, corpus.task_texts()


def _versions() -> dict:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__}


def build_inputs(config: TinyConfig) -> dict:
    stdlib, tasks = training_texts(config)
    return {"config": asdict(config), "stdlib": corpus.fingerprint(stdlib),
            "tasks": corpus.fingerprint(tasks), "versions": _versions(),
            **cpu_precision().key_inputs()}


def build(config: TinyConfig, cache_dir: Path, *, rebuild: bool = False) -> Path:
    """The model directory for `config`, trained now unless an intact one is cached."""
    return artifacts.build(cache_dir, f"base-{config.name}", build_inputs(config),
                           lambda out: train_into(config, out), rebuild=rebuild,
                           label=f"build {config.name}")


class Batches:
    """Training blocks: packed capability tasks (starting at a task) and random stdlib windows."""

    def __init__(self, config: TinyConfig, stdlib_ids: list[int], task_ids: list[list[int]]):
        self.config = config
        self.stdlib_ids = stdlib_ids
        self.task_ids = task_ids
        self.rng = random.Random(config.seed)

    def _task_block(self, length: int) -> list[int]:
        block: list[int] = []
        while len(block) < length:
            block += self.rng.choice(self.task_ids)
        return block[:length]

    def _stdlib_block(self, length: int) -> list[int]:
        start = self.rng.randrange(len(self.stdlib_ids) - length)
        return self.stdlib_ids[start : start + length]

    def next(self):
        import torch

        n_tasks = round(self.config.batch_size * self.config.task_fraction)
        length = self.config.seq_len
        blocks = [self._task_block(length) for _ in range(n_tasks)]
        blocks += [self._stdlib_block(length) for _ in range(self.config.batch_size - n_tasks)]
        return torch.tensor(blocks, dtype=torch.long)


def learning_rate(config: TinyConfig, step: int) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    done = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))


def train_into(config: TinyConfig, out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    stdlib, tasks = training_texts(config)
    tokenizer = bpe.train(stdlib + tasks, config.vocab_size)
    eos = tokenizer.token_to_id(bpe.EOS)
    stdlib_ids = [i for text in stdlib for i in tokenizer.encode(text).ids + [eos]]
    # Functions of one module are separated by a blank line; a task block reads like a module.
    task_ids = [tokenizer.encode(text + "\n\n").ids for text in tasks]

    precision = cpu_precision()  # tiny is built on the CPU, also where there is a GPU
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden,
        num_hidden_layers=config.layers, num_attention_heads=config.heads,
        num_key_value_heads=config.heads, intermediate_size=config.intermediate,
        max_position_embeddings=config.max_positions, tie_word_embeddings=True,
        bos_token_id=tokenizer.token_to_id(bpe.BOS), eos_token_id=eos,
        pad_token_id=tokenizer.token_to_id(bpe.PAD),
    ))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95),
                                  weight_decay=0.1)
    batches = Batches(config, stdlib_ids, task_ids)
    log, started = [], time.perf_counter()
    model.train()
    reported = progress.current()
    reported.set_total(config.steps)
    reported.note(**precision.facts())
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        batch = batches.next()
        with precision.forward_context():
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        log.append(round(loss.item(), 4))
        reported.advance(tokens=batch.numel())
    seconds = time.perf_counter() - started

    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)
    bpe.save_pretrained(tokenizer, out, config.max_positions)
    tokens = config.steps * config.batch_size * config.seq_len
    (out / "training_log.json").write_text(json.dumps({
        "loss": log, "parameters": sum(p.numel() for p in model.parameters()),
        "tokens": tokens, "seconds": round(seconds, 1), "autocast": precision.autocast,
        "tokens_per_second": round(tokens / seconds),
    }))


def main() -> None:
    import argparse

    from leakbench.options import parse_cache_dir

    parser = argparse.ArgumentParser(description="Build the embedded model (cached by content).")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""),
                        help="default: $LEAKBENCH_CACHE_DIR or ~/.cache/leakbench")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    path = build(CONFIGS[args.config], args.cache_dir, rebuild=args.rebuild)
    weights = artifacts.file_sha256(path / "model.safetensors")
    print(f"{args.config}: {path}\nweights sha256 {weights}")


if __name__ == "__main__":
    main()
