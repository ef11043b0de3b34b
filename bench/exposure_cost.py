"""Exposure's cost and resolution against the number of decoys R per secret.

    python bench/exposure_cost.py [--model tiny|micro] [--algo none,retrain] [--decoys 10,25,50,100]
                                  [--cases-dir DIR] [--cache-dir DIR] [--docs FILE]

`--metrics=...,exposure` ranks every forget and holdout secret among R decoys of its kind
(leakbench.exposure); its cost grows with R, and so does the most exposure can show
(log2(R + 1) bits). Side by side in one run, for each R of --decoys, on each variant of --algo
(built or taken from the cache as a benchmark run does: a cold cache trains them first): the
seconds the exposure stage takes per variant, the candidates scored per second, and what the
variant's exposure reads (forget and holdout means, the share of secrets above every decoy, the
AUC between forget and holdout secrets). The planted model (`none`) should separate at every R,
the retrained reference (`retrain`) at none. Writes the "Exposure cost" section of
docs/PERFORMANCE.md, or of --docs (tests/test_bench_smoke.py: `micro` on a few cases, a
temporary file).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from host import description

from leakbench import models, pipeline
from leakbench.docs_section import write_section
from leakbench.options import parse_algorithms, parse_cache_dir
from leakbench.plant import plant_config
from leakbench.privacy_metrics import Plan, aggregate, exposure_log_perplexities
from leakbench.probes import PrivacyData

ROOT = Path(__file__).resolve().parents[1]
PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
SECTION = "Exposure cost"
GROUPS = ("exposure",)


def measure(spec: models.ModelSpec, algorithms: tuple[str, ...], decoys: int, cases_dir: Path,
            cache_dir: Path) -> dict[str, dict]:
    """Per variant: the exposure stage's seconds with `decoys` per secret (an empty artifact
    cache, so that it is computed), the candidates it scored, and its exposure metrics."""
    data = PrivacyData.load(cases_dir, plant_config(models.family(spec)).forget_samples,
                            decoys=True, decoy_count=decoys)
    variants = pipeline.build_variants(spec, algorithms, data, cache_dir, rebuild=False)
    plan = Plan.build(GROUPS, algorithms, algorithms, variants, data)
    out = {}
    for name in algorithms:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            candidates = exposure_log_perplexities(variants[name], plan, Path(scratch))
            seconds = time.perf_counter() - started
        scores = plan.scores({}, None, candidates)
        out[name] = {"seconds": seconds, "secrets": len(candidates),
                     "candidates": sum(len(c) for c in candidates),
                     **aggregate(scores, None, GROUPS)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "micro"), default="tiny")
    parser.add_argument("--algo", type=parse_algorithms, default=("none", "retrain"),
                        help="the variants to score (default: none,retrain)")
    parser.add_argument("--decoys", default="10,25,50,100",
                        help="comma list of decoys per secret (default: %(default)s)")
    parser.add_argument("--cases-dir", type=Path, default=ROOT / "cases")
    parser.add_argument("--cache-dir", type=parse_cache_dir, default=parse_cache_dir(""),
                        help="default: $LEAKBENCH_CACHE_DIR or ~/.cache/leakbench")
    parser.add_argument("--docs", type=Path, default=PERFORMANCE_MD,
                        help="the Markdown file whose section is rewritten (%(default)s)")
    args = parser.parse_args()
    try:
        counts = [int(text) for text in args.decoys.split(",")]
    except ValueError:
        parser.error(f"--decoys: {args.decoys!r} is not a comma list of whole numbers")
    if not counts or min(counts) < 2:
        parser.error("--decoys: each count at least 2 (the extrapolation fits two or more)")
    spec = models.lookup(args.model)
    results = {}
    for count in counts:
        results[count] = measure(spec, args.algo, count, args.cases_dir, args.cache_dir)
        for name, row in results[count].items():
            print(f"R={count} {name}: {row['seconds']:.1f} s, exposure {row['exposure']:.2f} "
                  f"bits, AUC {row['exposure_auc']:.3f}", flush=True)
    rows = ["| R | variant | seconds | secrets | candidates/s | exposure, forget | "
            "exposure, holdout | most possible | above every decoy | AUC |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for count, variants in results.items():
        for name, row in variants.items():
            rows.append(f"| {count} | {name} | {row['seconds']:.1f} | {row['secrets']} "
                        f"| {row['candidates'] / row['seconds']:.0f} | {row['exposure']:.2f} "
                        f"| {row['exposure_holdout']:.2f} | {math.log2(count + 1):.2f} "
                        f"| {row['exposure_top_share']:.1%} | {row['exposure_auc']:.3f} |")
    text = (f"Command: `python bench/exposure_cost.py --model {args.model} --algo "
            f"{','.join(args.algo)} --decoys {args.decoys}` ({time.strftime('%Y-%m-%d')}, "
            f"{description()}). Exposure in bits; most possible: log2(R + 1); a value never "
            "seen averages log2(R + 1) - log2((R + 1)!) / (R + 1) bits (1.16 at R = 10, 1.40 at "
            "R = 100); above every decoy: share of forget secrets; AUC: "
            "forget vs holdout secrets by exposure.\n\n" + "\n".join(rows) + "\n")
    print(text)
    write_section(args.docs, SECTION, text)


if __name__ == "__main__":
    main()
