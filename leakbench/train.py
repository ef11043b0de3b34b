"""Build a run's training artifacts without serving: the planted model and the variants of --algo
(the retrain reference, the unlearned models).

    python -m leakbench.train --model micro --algo kl
    accelerate launch --config_file fsdp.yaml -m leakbench.train --model codellama --algo all \\
        --cache-dir /shared/leakbench-cache

They are the artifacts that `pytest benchmark` with the same --model, --algo, --cases-dir and
--cache-dir finds cached: both build them through leakbench.pipeline.build_variants, so the
benchmark run that follows only serves and judges. Run plainly, it trains in this one process
(the default). Under `accelerate launch` every process trains on its share of each batch and
process 0 writes (algorithms.distributed, leakbench.artifacts; docs/SCALING.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from algorithms.distributed import UnsupportedLaunch
from leakbench import launch, models, pipeline
from leakbench.cases import CaseFileError
from leakbench.committed_cases import CASES_DIR
from leakbench.options import (
    DEFAULT_ALGORITHMS,
    DEFAULT_MODEL,
    OptionError,
    parse_algorithms,
    parse_cache_dir,
    parse_cases_dir,
)
from leakbench.plant import plant_config
from leakbench.probes import PrivacyData
from leakbench.unlearn import Variant

PROG = "python -m leakbench.train"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"as for pytest benchmark (default: {DEFAULT_MODEL}): "
                        f"{', '.join(models.REGISTRY)}, a Hugging Face id or a directory")
    parser.add_argument("--algo", default=DEFAULT_ALGORITHMS,
                        help=f"algorithms, 'all' or a comma list (default: {DEFAULT_ALGORITHMS})")
    parser.add_argument("--cache-dir", default=None,
                        help="where the artifacts go (default: $LEAKBENCH_CACHE_DIR or "
                        "~/.cache/leakbench); under a multi-node launch, a directory every node "
                        "mounts at the same path")
    parser.add_argument("--cases-dir", default=None,
                        help=f"the privacy data and case files (default: {CASES_DIR})")
    parser.add_argument("--rebuild", action="store_true",
                        help="train again instead of reusing cached artifacts")
    args = parser.parse_args(argv)
    group = launch.processes()  # under a launch, the processes find each other here
    try:
        variants = build(args.model, args.algo, args.cache_dir, args.cases_dir, args.rebuild)
    except (OptionError, CaseFileError, UnsupportedLaunch) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except models.ModelUnavailable as err:
        print(f"{PROG}: error: --model: {err}", file=sys.stderr)
        return 2
    if group is None or group.is_main:
        for name, variant in variants.items():
            print(f"{name:<10} {variant.key}  {variant.adapter or variant.weights}")
    if group is not None:
        group.end()
    return 0


def build(model: str, algo: str, cache_dir: str | None, cases_dir: str | None,
          rebuild: bool) -> dict[str, Variant]:
    """The variants of `algo` for `model`, built as the benchmark's `prepared` fixture builds
    them: the same cases (the part of the forget set the model's planting memorizes), the same
    cache directory, the same keys."""
    algorithms = parse_algorithms(algo)
    cache = parse_cache_dir(cache_dir)
    cases = parse_cases_dir(cases_dir) or _default_cases()
    spec = models.lookup(model.strip())
    data = PrivacyData.load(cases, plant_config(models.family(spec)).forget_samples)
    return pipeline.build_variants(spec, algorithms, data, cache, rebuild)


def _default_cases() -> Path:
    if not CASES_DIR.is_dir():
        raise OptionError(f"--cases-dir: there is no {CASES_DIR} beside the leakbench package; "
                          "give the directory that holds forget.jsonl and holdout.jsonl")
    return CASES_DIR


if __name__ == "__main__":
    sys.exit(main())
