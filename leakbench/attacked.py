"""Attacked variants: a variant of the run after one attack (attacks/), served like the others.

An attack test asks for completions of the variant of its algorithm after its attack. That
weight set has a name of its own, `attacked_name` ("kl@relearn25"), under which its requests and
answers travel through the run like those of an unlearned variant: the preparation keys the
collected requests by it, the pipeline builds only the attacked variants some collected test
asks for, and the engine of the run serves each as one more full-weight checkpoint of its
architecture (attacks.stage.attacked keeps tensor names, shapes, dtypes and the tokenizer), in
the same `generate` pass as the unattacked variants.

Every attack is judged on the same probes, the forget probes of the owners outside the relearn
slice (attacks.slices): the slice is what a relearning attack trains on, so its probes prove
nothing, and the other attacks use the same evaluated set so that the report's columns compare.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from attacks.slices import relearn_split
from attacks.stage import RunData, attacked
from leakbench import artifacts
from leakbench.plant import PlantConfig
from leakbench.probes import LeakProbe, PrivacyData
from leakbench.unlearn import Variant

SEPARATOR = "@"  # neither an algorithm's nor an attack's name holds it (both are identifiers)


def attacked_name(algorithm: str, attack: str) -> str:
    """The name of `algorithm`'s variant after `attack`: "kl@relearn25"."""
    return f"{algorithm}{SEPARATOR}{attack}"


def split_name(name: str) -> tuple[str, str] | None:
    """(algorithm, attack) of an attacked variant's name; None for an unattacked variant's."""
    algorithm, separator, attack = name.partition(SEPARATOR)
    return (algorithm, attack) if separator else None


def evaluated_probes(data: PrivacyData) -> list[LeakProbe]:
    """The forget probes every attack is judged on: those of the owners outside the slice."""
    evaluated = {sample.id for sample in relearn_split(data.forget)[1]}
    return [probe for probe in data.leak_probes("forget") if probe.sample.id in evaluated]


def build_attacked(names: Iterable[str], variants: dict[str, Variant], data: PrivacyData,
                   plant_config: PlantConfig, cache_dir: Path, rebuild: bool
                   ) -> dict[str, Variant]:
    """The attacked variants `names` (attacked names) of the unattacked `variants`, built now
    unless cached. A LoRA variant is attacked as its base weights with its adapter merged."""
    run = RunData(forget=data.forget, records=[*data.forget, *data.holdout],
                  plant_config=plant_config)
    built = {}
    for name in names:
        algorithm, attack = split_name(name)
        source = variants[algorithm]
        weights = attacked(source.weights, attack, run, cache_dir, adapter=source.adapter,
                           rebuild=rebuild, label=f"attack {name}")
        built[name] = Variant(name, weights, None, artifacts.read_manifest(weights)["key"])
    return built
