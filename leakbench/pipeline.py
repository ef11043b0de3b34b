"""The stages behind the benchmark's fixtures: model -> plant -> unlearn -> serve.

Every stage is a cached artifact, so a second run starts no training and no engine. `prepare` runs
under one lock in the cache directory: under pytest-xdist the first worker to get there builds and
generates for every worker, the others wait and then read the completion store. That is what keeps
the count of vLLM engines at one per model architecture per run, whatever `-n` is: weights that
share one (`architecture_key`) are loaded into one engine in turn (leakbench.serving).

The privacy metrics of the `memorization` tests (leakbench.privacy_metrics) ride along: their
token-level requests join the same engine call, and Min-K%++, which needs the full next-token
distribution, is computed here with transformers after generation, per variant, as a cached
artifact. `Prepared.privacy` holds the per-sample scores the tests aggregate.

The user's engine arguments (--engine-arg, --engine-config) reach every engine of the run through
`EngineJob.engine_args`. Completions are kept per variant *and* engine arguments: another dtype or
parallel layout may give other completions, so a run with other engine arguments generates anew.

Before the first training step, a run that will start an engine on the CPU checks that the memory
the engine needs is available now (`check_engine_memory`): otherwise it would find out only when
the engine starts, after all the training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from leakbench import artifacts, corpus, endpoint, engine_memory, models, serving, tiny
from leakbench.completions import Store, request_key
from leakbench.plant import plant, plant_config, planting_retain
from leakbench.privacy_metrics import Plan, Scores
from leakbench.probes import PrivacyData
from leakbench.serving import Answer, EngineJob, Request, Sampling, TokenRequest
from leakbench.unlearn import Variant, build_variant


@dataclass(frozen=True)
class Prepared:
    model: str
    variants: dict[str, Variant]  # empty when an --endpoint served the models
    completions: dict[str, dict[str, Answer]]  # algorithm -> request key -> answer
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


def base_model(spec: models.ModelSpec, cache_dir: Path, rebuild: bool) -> tuple[Path, str]:
    """The base weights and the hyper-parameter family they belong to."""
    if spec.kind == "builtin":
        return tiny.build(tiny.CONFIGS[spec.name], cache_dir, rebuild=rebuild), models.family(spec)
    return models.locate_weights(spec), models.family(spec)


def build_variants(spec: models.ModelSpec, algorithms: tuple[str, ...], data: PrivacyData,
                   cache_dir: Path, rebuild: bool) -> dict[str, Variant]:
    base, family = base_model(spec, cache_dir, rebuild)
    config = plant_config(family)
    retain = corpus.retain_texts(len(data.forget))
    planted = plant(base, [s.text for s in data.forget],
                    planting_retain(len(data.forget), config), config, cache_dir,
                    rebuild=rebuild)
    return {name: build_variant(name, base=base, planted=planted, forget=data.forget,
                                retain_texts=retain, family=family, plant_config=config,
                                cache_dir=cache_dir, rebuild=rebuild)
            for name in algorithms}


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


def _max_model_len(weights: Path) -> int:
    config = json.loads((weights / "config.json").read_text())
    return min(4096, config.get("max_position_embeddings", 4096))


def completions_dir(cache_dir: Path, variant: Variant, engine_args: dict | None) -> Path:
    """Where the completions of `variant` generated with `engine_args` are kept."""
    key = variant.key if not engine_args else artifacts.content_key(
        {"variant": variant.key, "engine_args": engine_args})
    return cache_dir / "completions" / key


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


def generate(variants: dict[str, Variant], needed: dict[str, list[Request | TokenRequest]],
             cache_dir: Path, engine_args: dict | None = None) -> dict[str, dict[str, Answer]]:
    """Fill each variant's store with what `needed` asks and it lacks: one engine per
    architecture (`engine_groups`)."""
    engine_args = engine_args or {}
    stores = {name: Store(completions_dir(cache_dir, v, engine_args))
              for name, v in variants.items()}
    missing = {name: stores[name].missing(needed.get(name, [])) for name in variants}
    for served in engine_groups({n: v for n, v in variants.items() if missing[n]}):
        names = [name for group in served.values() for name in group]
        job = engine_job(served, {n: missing[n] for n in names}, variants, engine_args)
        results = serving.run(job, cache_dir / "engine" / stores[names[0]].directory.name)
        for name in names:
            stores[name].add(missing[name], results[name])
    return {name: store.load() for name, store in stores.items()}


def generate_remote(url: str, needed: dict[str, list[Request]], cache_dir: Path, run_id: str
                    ) -> dict[str, dict[str, list[str]]]:
    """Completions from an --endpoint server. Its models may change between runs under the same
    names, so the store is this run's only: shared by its workers, never reused by a later run."""
    out = {}
    for name, requests in needed.items():
        store = Store(cache_dir / "completions" / artifacts.content_key(
            {"endpoint": url, "variant": name, "run": run_id}))
        missing = store.missing(requests)
        store.add(missing, endpoint.generate(url, name, missing))
        out[name] = store.load()
    return out


def prepare(spec: models.ModelSpec, algorithms: tuple[str, ...], data: PrivacyData,
            needed: dict[str, list[Request]], cache_dir: Path, *, rebuild: bool, run_id: str,
            endpoint_url: str | None = None, engine_args: dict | None = None,
            metrics: tuple[str, ...] = (), measured: tuple[str, ...] = ()) -> Prepared:
    """Variants built and every needed completion in the store; done once per run and cache.

    `metrics` are the privacy metric groups (--metrics) to compute for the algorithms in
    `measured` (those whose memorization tests were collected); not through an --endpoint."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / ".prepare.lock")):
        if endpoint_url:
            return Prepared(spec.name, {}, generate_remote(endpoint_url, needed, cache_dir, run_id))
        failed = cache_dir / f".failed-{run_id}"
        if failed.exists():  # another worker of this run saw the engine fail: no second engine
            raise serving.EngineFailed(failed.read_text())
        check_engine_memory(spec, algorithms, data, needed, engine_args or {},
                            bool(metrics and measured))
        marker = cache_dir / f".rebuilt-{run_id}"
        rebuild_now = rebuild and not marker.exists()  # --rebuild: once per run, not per worker
        variants = build_variants(spec, algorithms, data, cache_dir, rebuild_now)
        if rebuild_now:
            for variant in variants.values():
                Store(completions_dir(cache_dir, variant, engine_args)).clear()
            marker.touch()
        try:
            plan = Plan.build(metrics, measured, algorithms, variants, data)
            if plan is None:
                return Prepared(spec.name, variants,
                                generate(variants, needed, cache_dir, engine_args))
            answers = generate(variants, plan.add_requests(needed), cache_dir, engine_args)
            return Prepared(spec.name, variants, answers,
                            plan.measure(variants, answers, cache_dir, rebuild=rebuild_now))
        except serving.EngineFailed as err:
            failed.write_text(str(err))
            raise
