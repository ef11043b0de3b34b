"""A run's choices: every option of the command line, validated into one `RunOptions`.

Pure on purpose (no pytest, no torch), like the parsers it calls (leakbench.options,
leakbench.engine_options): `parse_options` takes the raw values keyed by the options' dest names,
so a run's options can be tested without starting pytest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from leakbench.engine_options import parse_engine_args
from leakbench.options import (
    DEFAULT_ALGORITHMS,
    DEFAULT_ATTACKS,
    DEFAULT_METRICS,
    DEFAULT_MODEL,
    Gate,
    OptionError,
    parse_algorithms,
    parse_attacks,
    parse_cache_dir,
    parse_cases_dir,
    parse_decoys,
    parse_endpoint,
    parse_gate,
    parse_metrics,
    parse_requests,
    parse_samples,
    parse_temperature,
    parse_top_k,
    parse_top_p,
)
from leakbench.schema import Decoding


@dataclass(frozen=True)
class RunOptions:
    """Everything the user chose for this run, validated.

    `model` is the name as typed; `leakbench.models.lookup` turns it into a `ModelSpec`.
    """

    model: str
    algorithms: tuple[str, ...]
    samples: int
    temperature: float
    cache_dir: Path
    rebuild: bool
    endpoint: str | None
    gates: tuple[Gate, ...]
    show_secrets: bool
    cases_dir: Path | None = None  # None: the `cases/` directory beside the run's rootdir
    engine_args: dict = field(default_factory=dict)  # keyword arguments of vllm.LLM
    metrics: tuple[str, ...] = tuple(DEFAULT_METRICS.split(","))  # privacy metric groups
    decoys: int | None = None  # exposure's decoys per secret; None: every one of the decoys file
    top_p: float = 1.0  # nucleus sampling; 1: every token
    top_k: int = 0  # the k likeliest tokens only; 0: every token

    @property
    def decoding(self) -> Decoding:
        """How every probe and task draws its completions."""
        return Decoding(self.samples, self.temperature, self.top_p, self.top_k)
    attacks: tuple[str, ...] = parse_attacks(DEFAULT_ATTACKS)  # attack settings (attacks/)
    requests: int = 1  # deletion requests served one after another (leakbench.deletion_requests)


def parse_options(raw: Mapping[str, object]) -> RunOptions:
    """Validate the raw option values (keyed by the options' dest names) into `RunOptions`.

    Missing or None values take their defaults, so ``parse_options({})`` is the default run.
    """

    def given(name: str, default: object) -> object:
        value = raw.get(name)
        return default if value is None else value

    samples = parse_samples(given("samples", 1))
    temperature = parse_temperature(given("temperature", 0.0))
    if samples > 1 and temperature == 0:
        raise OptionError(
            f"--samples: {samples} samples at --temperature=0 are identical (greedy decoding); "
            "set --temperature above 0 or use --samples=1"
        )
    top_p, top_k = parse_top_p(given("top_p", 1.0)), parse_top_k(given("top_k", 0))
    if temperature == 0 and (top_p != 1 or top_k):
        raise OptionError(f"--{'top-p' if top_p != 1 else 'top-k'}: no effect at "
                          "--temperature=0 (greedy decoding takes the likeliest token); set "
                          "--temperature above 0")
    endpoint = given("endpoint", "")
    engine_args = parse_engine_args(given("engine_arg", ()), given("engine_config", ""))
    if engine_args and endpoint:
        raise OptionError("--engine-arg/--engine-config: no effect with --endpoint; the server "
                          "there runs with the engine arguments it was started with")
    metrics = parse_metrics(str(given("metrics", DEFAULT_METRICS)))
    decoys = parse_decoys(raw["decoys"]) if raw.get("decoys") is not None else None
    if decoys is not None and "exposure" not in metrics:
        raise OptionError("--decoys: no effect without exposure in --metrics (e.g. "
                          f"--metrics={DEFAULT_METRICS},exposure)")
    return RunOptions(
        model=str(given("model", DEFAULT_MODEL)).strip(),
        algorithms=parse_algorithms(str(given("algo", DEFAULT_ALGORITHMS))),
        samples=samples,
        temperature=temperature,
        cache_dir=parse_cache_dir(given("cache_dir", "")),
        rebuild=bool(given("rebuild", False)),
        endpoint=parse_endpoint(str(endpoint)) if endpoint else None,
        gates=tuple(parse_gate(str(text)) for text in given("gate", ())),
        show_secrets=bool(given("show_secrets", False)),
        cases_dir=parse_cases_dir(given("cases_dir", "")),
        engine_args=engine_args,
        metrics=metrics,
        decoys=decoys,
        top_p=top_p,
        top_k=top_k,
        attacks=_attacks(raw.get("attacks"), bool(endpoint)),
        requests=_requests(raw.get("requests"), bool(endpoint)),
    )


def _requests(given: object, endpoint: bool) -> int:
    """--requests; only 1 with --endpoint, whose server's models LeakBench does not unlearn."""
    requests = parse_requests(given) if given is not None else 1
    if requests > 1 and endpoint:
        raise OptionError("--requests: the models of an --endpoint server are unlearned there, "
                          "not by LeakBench; use --requests=1 or serve the models from here")
    return requests


def _attacks(given: object, endpoint: bool) -> tuple[str, ...]:
    """--attacks, whose default is DEFAULT_ATTACKS, or none with --endpoint: an attack changes
    weights LeakBench holds, and a server's are not (its variants are found by model name)."""
    if not endpoint:
        return parse_attacks(str(given or DEFAULT_ATTACKS))
    if given is not None and parse_attacks(str(given)):
        raise OptionError("--attacks: the models of an --endpoint server cannot be attacked "
                          "(an attack changes weights that LeakBench builds); use --attacks=none "
                          "or serve the models from here")
    return ()
