"""The attack stage: one attack applied to one variant's weights, as a content-addressed artifact.

`attacked` returns a full-weight checkpoint directory (HF format, safetensors, the tokenizer of
the input) with the same tensor names, shapes and dtypes as its input, so the run's engine serves
it in place like any full-weight variant. A LoRA variant (an adapter over full weights) is merged
first. The artifact's key (stage `attacked`, leakbench.artifacts) records the input weights by
their artifact key (or path, for weights outside the cache), the attack and its settings, what
the family adds (`key_inputs`: the training data, the recipe, the precision) and the versions of
the libraries that compute it; it is built under a temporary name and renamed, once for parallel
workers.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import attacks
from leakbench import artifacts
from leakbench.cases import Sample
from leakbench.plant import PlantConfig

STAGE = "attacked"
RECORDS = {artifacts.MANIFEST, "training_log.json", "unlearning_log.json"}  # LeakBench's own
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth"}


@dataclass(frozen=True)
class RunData:
    """What the attacks read of a run besides the weights."""

    forget: list[Sample]  # the planted forget samples: the relearn slice is drawn from them
    records: list[Sample]  # every record of the run's data (forget file, user cases, holdout):
    # relearn_benign's fresh values are none of theirs
    plant_config: PlantConfig  # the planting recipe: relearning trains with its optimizer and lr


@dataclass(frozen=True)
class Source:
    """The weights under attack: a full-weight checkpoint, with a LoRA adapter over it or not."""

    weights: Path
    adapter: Path | None = None

    def identity(self) -> dict:
        return {"weights": _identity(self.weights),
                "adapter": _identity(self.adapter) if self.adapter else None}

    def load(self, dtype):
        """The model on the CPU in `dtype` ("auto": the checkpoint's own), the adapter merged;
        every parameter trainable, as transformers loads one."""
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(self.weights, dtype=dtype)
        if self.adapter is None:
            return model
        from peft import PeftModel

        return PeftModel.from_pretrained(model, self.adapter).merge_and_unload().requires_grad_()

    def save(self, model, out: Path) -> None:
        """`model` as safetensors into `out`, with every other file of the input weights (the
        tokenizer's) copied as it is; not the input's weights or LeakBench's records."""
        model.save_pretrained(str(out), safe_serialization=True)
        for path in sorted(self.weights.iterdir()):
            weights = path.suffix in WEIGHT_SUFFIXES or path.name.endswith(".index.json")
            if path.is_file() and not weights and not (out / path.name).exists() \
                    and path.name not in RECORDS:
                shutil.copyfile(path, out / path.name)


def _identity(path: Path) -> str:
    """An artifact's key, or the path of weights that are no artifact (a local HF model)."""
    manifest = Path(path) / artifacts.MANIFEST
    return artifacts.read_manifest(path)["key"] if manifest.exists() else str(path)


def versions(*packages: str) -> dict[str, str]:
    return {name: version(name) for name in ("torch", "transformers", "peft", *packages)}


def attacked(weights: Path, attack: str, run: RunData, cache_dir: Path, *,
             adapter: Path | None = None, rebuild: bool = False, label: str | None = None
             ) -> Path:
    """The checkpoint directory of `attack` (a setting name of the registry) applied to
    `weights` (with `adapter` merged in), built now unless cached; `label` names the stage in
    the run's progress (leakbench.progress)."""
    spec = attacks.get(attack)
    if (Path(weights) / "adapter_config.json").exists():
        raise ValueError(f"{weights} is a LoRA adapter; pass the weights it was trained over as "
                         "`weights` and it as `adapter`")
    family = spec.family
    source = Source(Path(weights), Path(adapter) if adapter else None)
    inputs = {**source.identity(), "attack": spec.name, "settings": spec.settings,
              **family.key_inputs(spec.settings, run)}
    return artifacts.build(cache_dir, STAGE, inputs,
                           lambda out: family.apply(spec.settings, source, run, out),
                           rebuild=rebuild, collective=family.trains_on_slice,
                           label=label or f"attack {spec.name}")
