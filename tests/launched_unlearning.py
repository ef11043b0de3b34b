"""Run by tests/test_train.py under a 2-process launch: full-parameter unlearning (kl) of a small
random Llama through algorithms.loop. Process 0 prints, as JSON, what every process ended with:
under DDP their weights must agree, or the gradients were not averaged. Like leakbench.train, it
joins the launch's processes first and leaves with them at the end (leakbench.launch)."""

import copy
import json
import random
from dataclasses import replace

import torch
from accelerate.utils import gather_object
from transformers import LlamaConfig, LlamaForCausalLM

import algorithms
from algorithms.batches import Example
from algorithms.loop import unlearn
from leakbench import launch


def examples(rng: random.Random, count: int, secret: bool) -> list[Example]:
    out = []
    for _ in range(count):
        ids = [rng.randrange(3, 50) for _ in range(rng.randrange(4, 12))]
        out.append(Example(ids, [int(secret and i >= len(ids) - 2) for i in range(len(ids))]))
    return out


def main() -> None:
    group = launch.processes()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
        pad_token_id=0, bos_token_id=1, eos_token_id=2))
    rng = random.Random(0)
    forget, retain = examples(rng, 7, True), examples(rng, 9, False)  # batches of 3, 3 and 1
    hp = replace(algorithms.load_hparams("micro", "kl"), mode="full", epochs=2, batch_size=3,
                 lr=1e-2, max_steps=None)
    result = unlearn(model, copy.deepcopy(model), forget, retain, algorithms.get("kl"), hp,
                     pad_id=0)
    checksum = sum(p.double().sum().item() for p in model.parameters())
    checksums = gather_object([checksum])
    if group.is_main:
        print(json.dumps({"processes": result["processes"], "steps": result["steps"],
                          "losses": [r["loss"] for r in result["records"]],
                          "checksums": checksums}))
    group.end()


if __name__ == "__main__":
    main()
