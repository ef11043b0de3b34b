"""The stages behind the benchmark's fixtures, in the order data flows through them:
cases -> plant -> unlearn -> attack -> generate (`prepare`) -> measure (`measure`).

Every stage is a cached artifact, so a second run starts no training and no engine. Both stage
functions run under one lock in the cache directory: under pytest-xdist the first worker to get
there builds and generates for every worker, the others wait and then read the completion store.
That is what keeps the count of vLLM engines at one per model architecture per run, whatever `-n`
is: weights that share one (`architecture_key`) are loaded into one engine in turn
(leakbench.serving).

Generation goes through one `Generator` (leakbench.schema): the run's vLLM engines (`Engines`),
or with --endpoint an OpenAI-compatible server (leakbench.endpoint), whose models stand for the
variants so that nothing is planted or unlearned. Either fills the completion store with what it
lacks, in one call for the whole run.

The privacy metrics of the `memorization` tests (leakbench.privacy_metrics) are planned before
generation, since their token-level requests join the same engine call, and measured after it
(`measure`): the engine's answers give most of them, and Min-K%++, which needs the full next-token
distribution, comes from a transformers forward pass per variant, a cached artifact.

The user's engine arguments (--engine-arg, --engine-config) reach every engine of the run through
`EngineJob.engine_args`. Completions are kept per variant *and* engine arguments: another dtype or
parallel layout may give other completions, so a run with other engine arguments generates anew.

Before the first training step, a run that will start an engine on the CPU checks that the memory
the engine needs is available now (`check_engine_memory`): otherwise it would find out only when
the engine starts, after all the training.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from algorithms import get as get_algorithm
from leakbench import (
    artifacts,
    corpus,
    endpoint,
    engine_memory,
    healing,
    models,
    progress,
    serving,
    tiny,
)
from leakbench.attacked import build_attacked, split_name
from leakbench.cases import Sample
from leakbench.completions import Store, request_key
from leakbench.deletion_requests import deletion_requests, request_name
from leakbench.plant import PlantConfig, plant, plant_config, planting_retain
from leakbench.privacy_metrics import Plan, Scores
from leakbench.probes import LeakProbe, PrivacyData
from leakbench.schema import Answer, Generator, Request, Sampling, TokenRequest
from leakbench.serving import EngineJob
from leakbench.unlearn import Variant, build_variant

LOCK = ".prepare.lock"  # in the cache directory: one worker at a time runs a stage function


@dataclass(frozen=True)
class Prepared:
    model: str
    variants: dict[str, Variant]  # empty when an --endpoint served the models
    completions: dict[str, dict[str, Answer]]  # algorithm -> request key -> answer
    privacy_plan: Plan | None = None  # the privacy metrics whose requests were generated
    privacy: dict[str, Scores] = field(default_factory=dict)  # algorithm -> per-sample scores

    def of(self, algorithm: str, request: Request | TokenRequest) -> Answer:
        """The completions of a text request, the `TokenAnswer` of a token request."""
        return self.completions[algorithm][request_key(request)]

    def describe(self, algorithm: str) -> dict:
        """What a test records about the variant it judged (see leakbench.outcomes)."""
        variant = self.variants.get(algorithm)
        return {"model": self.model, "variant": variant.key if variant else None,
                "unlearn_seconds_per_sample": variant.seconds_per_forget_sample if variant
                else None}


def model_shape(spec: models.ModelSpec) -> engine_memory.ModelShape:
    """The shape of the model's weights, known before any training (a built-in model's from its
    configuration, before it is built)."""
    if spec.kind == "builtin":
        return engine_memory.ModelShape.of_tiny(tiny.CONFIGS[spec.name])
    return engine_memory.ModelShape.of_weights(models.locate_weights(spec))


def check_engine_memory(spec: models.ModelSpec, algorithms: tuple[str, ...], data: PrivacyData,
                        needed: dict[str, list[Request]], engine_args: dict,
                        memorization: bool) -> None:
    """Raise engine_memory.EngineMemoryShort when the engine this run would start on the CPU
    cannot get its memory now. Planned as the run's engines will be: one engine for all variants,
    LoRA slots for each, and, with the `memorization` metrics, each sample's text as a request."""
    if not engine_memory.engine_runs_on_cpu():
        return
    shape = model_shape(spec)
    kwargs = {"dtype": EngineJob.dtype, "max_model_len": min(4096, shape.max_positions),
              "enable_lora": True, "max_lora_rank": EngineJob.max_lora_rank,
              "max_loras": max(1, len(algorithms)), **engine_args}
    requests = [request for requests in needed.values() for request in requests]
    if memorization:
        texts = [sample.text for sample in (*data.forget, *data.holdout)]
        requests += [Request(text, Sampling(max_tokens=1)) for text in texts] * len(algorithms)
    engine_memory.check_available(shape, requests, kwargs, engine_memory.MemoryNow.read())


def base_model(spec: models.ModelSpec, cache_dir: Path, rebuild: bool) -> tuple[Path, str]:
    """The base weights and the hyper-parameter family they belong to."""
    if spec.kind == "builtin":
        return tiny.build(tiny.CONFIGS[spec.name], cache_dir, rebuild=rebuild), models.family(spec)
    return models.locate_weights(spec), models.family(spec)


@dataclass(frozen=True)
class Planting:
    """The planted model and what every unlearning of it takes besides its algorithm."""

    base: Path
    family: str  # of the hyper-parameters (algorithms/hparams.toml)
    planted: Path
    config: PlantConfig
    retain: list[str]  # the retain texts of unlearning

    def variant(self, name: str, forget: list[Sample], cache_dir: Path, rebuild: bool, **more
                ) -> Variant:
        """`name`'s variant unlearning `forget` (leakbench.unlearn.build_variant; `more`: a
        trial's `hp`, a previous request's variant `after`, a label)."""
        return build_variant(name, base=self.base, planted=self.planted, forget=forget,
                             retain_texts=self.retain, family=self.family,
                             plant_config=self.config, cache_dir=cache_dir, rebuild=rebuild,
                             **more)

    def after_requests(self, name: str, requests: list[list[Sample]], cache_dir: Path,
                       rebuild: bool) -> dict[str, Variant]:
        """`name`'s variants after each deletion request (leakbench.deletion_requests), each
        going on from the one before: the last under `name`, the others under their
        `request_name`."""
        built, after = {}, None
        for number, request in enumerate(requests, 1):
            after = self.variant(name, request, cache_dir, rebuild, after=after,
                                 label=f"unlearn {name}, request {number}/{len(requests)}")
            built[name if number == len(requests) else request_name(name, number)] = after
        return built


def planting(spec: models.ModelSpec, data: PrivacyData, cache_dir: Path, rebuild: bool
             ) -> Planting:
    """The model of `spec` with the whole forget set planted (tuning owners included), built
    unless cached."""
    base, family = base_model(spec, cache_dir, rebuild)
    config = plant_config(family)
    planted = plant(base, [s.text for s in data.forget],
                    planting_retain(len(data.forget), config), config, cache_dir,
                    rebuild=rebuild)
    return Planting(base, family, planted, config, corpus.retain_texts(len(data.forget)))


def build_variants(spec: models.ModelSpec, algorithms: tuple[str, ...], data: PrivacyData,
                   cache_dir: Path, rebuild: bool, requests: int = 1) -> dict[str, Variant]:
    """Every algorithm's variant; with several deletion `requests`, a loss algorithm's after the
    last request, and its variants after the earlier ones too (`Planting.after_requests`)."""
    planted = planting(spec, data, cache_dir, rebuild)
    split = deletion_requests(data.forget, requests) if requests > 1 else None
    variants = {}
    for name in algorithms:
        if split and get_algorithm(name).kind == "loss":
            variants |= planted.after_requests(name, split, cache_dir, rebuild)
        else:
            variants[name] = planted.variant(name, data.forget, cache_dir, rebuild)
    return variants


# Files of a weights directory that are LeakBench's records, not read by any engine.
_RECORDS = {artifacts.MANIFEST, "training_log.json", "unlearning_log.json"}
# Keys of a JSON file that say who wrote it, not what it describes.
_PROVENANCE = {"transformers_version"}


def architecture_key(weights: Path) -> str:
    """Equal for two weights directories exactly when one engine may serve both, loading the
    second in place of the first.

    An in-place reload replaces the weight tensors and nothing else: the model's layers and
    shapes, what vLLM derived from config.json (the rotary cache, norms, the stop tokens of
    generation_config.json) and the tokenizer stay those of the weights the engine started on.
    So every file but the weights must be equal, LeakBench's records and the JSON keys that name
    the writer (`transformers_version`) aside; and the safetensors files must hold the same tensor
    names, shapes and dtypes: vLLM's reload keeps, with only a warning, a tensor that the new
    checkpoint lacks. Other files count by their bytes, so weights in another format than
    safetensors (LeakBench writes none) never share an engine.
    """
    return artifacts.content_key({path.name: _describe(path) for path in sorted(weights.iterdir())
                                  if path.is_file() and path.name not in _RECORDS})


def _describe(path: Path) -> object:
    """What of a weights directory's file must match for `architecture_key`."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(path, framework="numpy") as tensors:
            slices = {name: tensors.get_slice(name) for name in tensors.keys()}
            return {name: [t.get_dtype(), t.get_shape()] for name, t in slices.items()}
    if path.suffix == ".json":
        content = json.loads(path.read_text())
        if isinstance(content, dict):
            return {key: value for key, value in content.items() if key not in _PROVENANCE}
        return content
    return artifacts.file_sha256(path)


def engine_groups(variants: dict[str, Variant]) -> list[dict[Path, list[str]]]:
    """The variants by engine: one engine per `architecture_key`, serving its weights in the
    order of `variants`, each with the variants on it."""
    groups: dict[str, dict[Path, list[str]]] = {}
    for name, variant in variants.items():
        group = groups.setdefault(architecture_key(variant.weights), {})
        group.setdefault(variant.weights, []).append(name)
    return list(groups.values())


def _max_model_len(weights: Path) -> int:
    config = json.loads((weights / "config.json").read_text())
    return min(4096, config.get("max_position_embeddings", 4096))


def engine_job(served: dict[Path, list[str]], requests: dict[str, list[Request | TokenRequest]],
               variants: dict[str, Variant], engine_args: dict) -> EngineJob:
    """The job of the one engine that serves each weights directory in `served` for the variants
    listed with it; the weights' context length (at most 4096) and the job's dtype are defaults
    `engine_args` override (leakbench.serving.engine_kwargs)."""
    return EngineJob(
        weights={str(weights): names for weights, names in served.items()},
        adapters={n: str(variants[n].adapter) if variants[n].adapter else None for n in requests},
        requests=requests,
        max_model_len=_max_model_len(next(iter(served))),
        engine_args=dict(engine_args),
    )


@dataclass(frozen=True)
class Engines:
    """The run's vLLM engines as its `Generator`: one engine process per architecture
    (`engine_groups`), each answering its variants in one `generate` per weights set."""

    variants: dict[str, Variant]
    cache_dir: Path
    engine_args: dict

    def generate(self, requests: dict[str, list[Request | TokenRequest]]
                 ) -> dict[str, list[Answer]]:
        answers: dict[str, list[Answer]] = {}
        for served in engine_groups({name: self.variants[name] for name in requests}):
            names = [name for group in served.values() for name in group]
            job = engine_job(served, {name: requests[name] for name in names}, self.variants,
                             self.engine_args)
            first = completions_dir(self.cache_dir, self.variants[names[0]], self.engine_args)
            answers.update(serving.run(job, self.cache_dir / "engine" / first.name))
        return answers


def completions_dir(cache_dir: Path, variant: Variant, engine_args: dict | None) -> Path:
    """Where the completions of `variant` generated with `engine_args` are kept."""
    key = variant.key if not engine_args else artifacts.content_key(
        {"variant": variant.key, "engine_args": engine_args})
    return cache_dir / "completions" / key


def engine_stores(variants: dict[str, Variant], cache_dir: Path, engine_args: dict
                  ) -> dict[str, Store]:
    """Per variant, the store of its completions from an engine run with `engine_args`."""
    return {name: Store(completions_dir(cache_dir, variant, engine_args))
            for name, variant in variants.items()}


def endpoint_completions_dir(cache_dir: Path, url: str, variant: str, run_id: str) -> Path:
    """Where the completions of `variant` from the --endpoint server at `url` are kept. Its models
    may change between runs under the same names, so the store is this run's only: shared by its
    workers, never reused by a later run."""
    return cache_dir / "completions" / artifacts.content_key(
        {"endpoint": url, "variant": variant, "run": run_id})


def fill(stores: dict[str, Store], needed: dict[str, list[Request | TokenRequest]],
         generator: Generator) -> dict[str, dict[str, Answer]]:
    """Each variant's store (`stores`) filled with what `needed` asks and it lacks, in one call
    of `generator` (the run's "generate" stage, leakbench.progress); per variant, every answer
    its store holds."""
    held = {name: store.load() for name, store in stores.items()}
    missing = {name: store.missing(needed.get(name, []), held[name])
               for name, store in stores.items()}
    missing = {name: requests for name, requests in missing.items() if requests}
    with progress.stage("generate") as reported:
        if not missing:
            reported.cached()
        else:
            for name, answers in generator.generate(missing).items():
                stores[name].add(missing[name], answers)
                held[name] = stores[name].load()  # the answers as every later run reads them
                reported.advance(0, prompts=len(answers))
    return held


def generate(variants: dict[str, Variant], needed: dict[str, list[Request | TokenRequest]],
             cache_dir: Path, engine_args: dict | None = None) -> dict[str, dict[str, Answer]]:
    """`fill` for `variants` from their engines (`Engines`) into their `engine_stores`."""
    engine_args = engine_args or {}
    return fill(engine_stores(variants, cache_dir, engine_args), needed,
                Engines(variants, cache_dir, engine_args))


def healed_engines(variants: dict[str, Variant], cache_dir: Path, engine_args: dict,
                   probes: list[LeakProbe]) -> Generator:
    """The `Engines` of `variants`, each leak probe of `probes` asked from its last token
    boundary (leakbench.healing)."""
    return healing.Healing(
        Engines(variants, cache_dir, engine_args),
        healing.served_tokenizers({name: v.weights for name, v in variants.items()}, engine_args),
        healing.followings(probes))


def _import_libraries() -> None:
    """Import torch and transformers' tokenizers before taking the lock. The stages under it need
    them even when every artifact is cached (the artifacts' keys, the engine's memory check, the
    tokenizers of the privacy metrics and of prompt healing), and importing them takes seconds:
    outside the lock, pytest-xdist's workers import them at the same time, not one after the
    other."""
    import torch  # noqa: F401
    from transformers import AutoTokenizer  # noqa: F401


def prepare(spec: models.ModelSpec, algorithms: tuple[str, ...], data: PrivacyData,
            needed: dict[str, list[Request]], cache_dir: Path, *, rebuild: bool, run_id: str,
            endpoint_url: str | None = None, engine_args: dict | None = None,
            metrics: tuple[str, ...] = (), measured: tuple[str, ...] = (),
            requests: int = 1) -> Prepared:
    """The stages up to generation, done once per run and cache: the variants planted and
    unlearned (none with an --endpoint), the attacked variants that `needed` names
    (leakbench.attacked), then every needed completion generated into the store, attacked
    variants in the same engine pass as the others.

    `requests`: the deletion requests the forget set is unlearned in (`build_variants`).

    `metrics` are the privacy metric groups (--metrics) to plan for the algorithms in `measured`
    (those whose memorization tests were collected); not through an --endpoint. Their requests
    are generated here; `measure` computes them."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    engine_args = engine_args or {}
    if not endpoint_url:
        _import_libraries()
    with FileLock(str(cache_dir / LOCK)):
        failed = cache_dir / f".failed-{run_id}"
        if endpoint_url:
            variants, plan = {}, None
            stores = {name: Store(endpoint_completions_dir(cache_dir, endpoint_url, name, run_id))
                      for name in needed}
            generator: Generator = endpoint.Endpoint(endpoint_url)
        else:
            if failed.exists():  # another worker of this run saw the engine fail: no second one
                raise serving.EngineFailed(failed.read_text())
            check_engine_memory(spec, algorithms, data, needed, engine_args,
                                bool(metrics and measured))
            marker = cache_dir / f".rebuilt-{run_id}"
            rebuild_now = rebuild and not marker.exists()  # --rebuild: once per run, not per worker
            variants = build_variants(spec, algorithms, data, cache_dir, rebuild_now, requests)
            variants |= build_attacked([name for name in needed if split_name(name)], variants,
                                       data, plant_config(models.family(spec)), cache_dir,
                                       rebuild_now)
            stores = engine_stores(variants, cache_dir, engine_args)
            if rebuild_now:  # a rebuilt variant is asked again
                for store in stores.values():
                    store.clear()
                marker.touch()
            plan = Plan.build(metrics, measured, algorithms, variants, data)
            needed = plan.add_requests(needed) if plan else needed
            generator = healed_engines(variants, cache_dir, engine_args,
                                       data.leak_probes("forget")
                                       + data.leak_probes("holdout"))
        try:
            completions = fill(stores, needed, generator)
        except serving.EngineFailed as err:
            failed.write_text(str(err))
            raise
    return Prepared(spec.name, variants, completions, privacy_plan=plan)


def measure(prepared: Prepared, cache_dir: Path, *, rebuild: bool, run_id: str) -> Prepared:
    """The stage after generation: `prepared` with the per-sample privacy scores its plan asks
    for (`privacy`), or `prepared` itself when it has no plan.

    Under the lock of `prepare`, so that with --rebuild the first worker of the run to get here
    rebuilds the Min-K%++ artifacts, once, before any worker reads them."""
    plan = prepared.privacy_plan
    if plan is None:
        return prepared
    with FileLock(str(cache_dir / LOCK)):
        marker = cache_dir / f".remeasured-{run_id}"
        rebuild_now = rebuild and not marker.exists()
        scores = plan.measure(prepared.variants, prepared.completions, cache_dir,
                              rebuild=rebuild_now)
        if rebuild_now:
            marker.touch()
    return dataclasses.replace(prepared, privacy=scores)
