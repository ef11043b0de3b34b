"""What the training bench scripts (training_threads, training_precision, training_layout) share:
their command line, where they find the models they time, and the timed training step."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from leakbench.options import parse_cache_dir
from leakbench.tiny import CONFIGS

PERFORMANCE_MD = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"


def arguments(description: str, steps: int) -> argparse.Namespace:
    """--model, --cache-dir, --steps (at least 3: the first two are not timed), --repeat, --docs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""),
                        help="default: $LEAKBENCH_CACHE_DIR or ~/.cache/leakbench")
    parser.add_argument("--steps", type=int, default=steps, help="at least 3 (%(default)s)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--docs", type=Path, default=PERFORMANCE_MD,
                        help="the Markdown file whose section is rewritten (%(default)s)")
    args = parser.parse_args()
    if args.steps < 3:
        parser.error("--steps: at least 3 (the first two are left out of the median)")
    return args


def only_artifact(cache_dir: Path, stage: str) -> Path:
    """The last model directory of `stage` in the cache; exits naming it when there is none."""
    found = sorted((cache_dir / stage).glob("*/model.safetensors"))
    if not found:
        sys.exit(f"{Path(sys.argv[0]).name}: no {stage} artifact under {cache_dir / stage}; "
                 "run the benchmark on the model once or pass --cache-dir")
    return found[-1].parent


def timed_steps(model, loss_of: Callable[[int], object], steps: int, precision
                ) -> tuple[float, float]:
    """`steps` training steps of `model` on `loss_of(i)`: forward and loss in `precision`'s
    context, backward, clipping, AdamW. (Median seconds per step after the first two, the first
    step's loss.)"""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    seconds, first_loss = [], None
    for i in range(steps):
        started = time.perf_counter()
        with precision.forward_context():
            loss = loss_of(i)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - started)
        first_loss = loss.item() if first_loss is None else first_loss
    return statistics.median(seconds[2:]), first_loss
