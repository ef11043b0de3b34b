"""The model registry: resolving --model, and finding weights without the network."""

import importlib.util
import json
from pathlib import Path

import pytest

from leakbench.models import (
    REGISTRY,
    ModelSpec,
    ModelUnavailable,
    hf_cache_dir,
    locate_weights,
    lookup,
)
from leakbench.options import OptionError


def test_registry_holds_the_documented_names():
    assert list(REGISTRY) == ["tiny", "micro", "codegen", "codellama", "codeqwen", "aixcoder"]
    assert lookup("tiny").kind == lookup("micro").kind == "builtin"
    assert {name: lookup(name).source for name in REGISTRY if lookup(name).kind == "hf"} == {
        "codegen": "Salesforce/codegen25-7b-mono_P",
        "codellama": "codellama/CodeLlama-7b-hf",
        "codeqwen": "Qwen/CodeQwen1.5-7B",
        "aixcoder": "aiXcoder/aixcoder-7b-base",
    }
    assert [name for name, spec in REGISTRY.items() if spec.trust_remote_code] == ["codegen"]


def _vllm_registry_source():
    spec = importlib.util.find_spec("vllm")  # finds the package without importing it (slow)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("vLLM is not installed")
    return (
        Path(spec.submodule_search_locations[0]) / "model_executor/models/registry.py"
    ).read_text()


@pytest.mark.parametrize("name", [name for name in REGISTRY])
def test_registry_architectures_are_served_by_the_installed_vllm(name):
    assert f'"{REGISTRY[name].architecture}":' in _vllm_registry_source()


def test_existing_directory_is_a_local_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    assert lookup("weights") == ModelSpec("weights", str(tmp_path / "weights"), "local")


def test_registry_name_wins_over_a_directory_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "codellama").mkdir()
    assert lookup("codellama") is REGISTRY["codellama"]
    assert lookup("./codellama").kind == "local"


@pytest.mark.parametrize("name", ["bigcode/starcoder2-3b", "Org_1/model.v2-final"])
def test_hugging_face_id_is_accepted_without_looking_it_up(name):
    assert lookup(name) == ModelSpec(name, name, "hf")


@pytest.mark.parametrize(
    "name",
    ["xyz", "", "org/", "/name", "a/b/c", "org/na me", "org/-name", "org/name.", "org--x/name",
     "org/na..me", "/no/such/dir", "./missing", "org/" + "x" * 100],
)  # fmt: skip
def test_anything_else_is_an_option_error(name):
    with pytest.raises(OptionError) as caught:
        lookup(name)
    assert str(caught.value) == (
        f"--model: {name!r} is not a known model (tiny, micro, codegen, codellama, codeqwen, "
        "aixcoder), an existing directory, or a Hugging Face id like org/name"
    )


def _model_dir(path, *files):
    path.mkdir(parents=True)
    for name in files:
        (path / name).write_text("{}")
    return path


@pytest.mark.parametrize(
    "files",
    [
        ("config.json", "model.safetensors"),
        ("config.json", "pytorch_model.bin"),
        ("config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"),
    ],
)
def test_local_directory_with_weights_is_located(tmp_path, files):
    directory = _model_dir(tmp_path / "m", *files)
    assert locate_weights(lookup(str(directory))) == directory


@pytest.mark.parametrize(
    ("files", "lacking"),
    [
        ((), "config.json, weights (model*.safetensors or pytorch_model*.bin)"),
        (("model.safetensors",), "config.json"),
        (("config.json", "training_args.bin", "adapter_model.safetensors"), "weights"),
    ],
)
def test_local_directory_without_weights_names_what_is_missing(tmp_path, files, lacking):
    directory = _model_dir(tmp_path / "m", *files)
    spec = lookup(str(directory))
    with pytest.raises(ModelUnavailable) as caught:
        locate_weights(spec)
    assert str(caught.value).startswith(f"model directory {str(directory)!r} lacks {lacking}")
    assert "\n" not in str(caught.value)


def test_sharded_checkpoint_with_a_missing_shard_is_incomplete(tmp_path):
    directory = _model_dir(tmp_path / "m", "config.json", "model-00001-of-00002.safetensors")
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    expected = "lacks 1 of 2 shards listed in model.safetensors.index.json (first: {})"
    with pytest.raises(ModelUnavailable) as caught:
        locate_weights(lookup(str(directory)))
    assert str(caught.value).endswith(expected.format("model-00002-of-00002.safetensors"))


def test_directory_removed_after_lookup_is_unavailable(tmp_path):
    spec = lookup(str(_model_dir(tmp_path / "m")))
    (tmp_path / "m").rmdir()
    with pytest.raises(ModelUnavailable, match="does not exist$"):
        locate_weights(spec)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path / "hf" / "hub"


def test_hf_cache_dir_follows_the_environment(empty_hf_cache, monkeypatch, tmp_path):
    assert hf_cache_dir() == empty_hf_cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    assert hf_cache_dir() == tmp_path / "hub-cache"


def test_hf_model_not_in_cache_is_one_line_with_what_to_do(empty_hf_cache):
    with pytest.raises(ModelUnavailable) as caught:
        locate_weights(lookup("codellama"))
    assert str(caught.value) == (
        f"model 'codellama' (codellama/CodeLlama-7b-hf) is not in the Hugging Face cache "
        f"({empty_hf_cache}) and this run is offline; download it with "
        "`hf download codellama/CodeLlama-7b-hf` on a connected machine "
        "or pass --model=/path/to/weights"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_hf_id_typed_by_the_user_is_named_once(empty_hf_cache):
    with pytest.raises(
        ModelUnavailable, match=r"^model 'org/name' is not in the Hugging Face cache"
    ):
        locate_weights(lookup("org/name"))


def _cache_snapshot(hub, repo_id, *files):
    """Lay out a snapshot the way huggingface_hub's cache stores one."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return _model_dir(repo / "snapshots" / commit, *files)


def test_hf_model_in_cache_is_located(empty_hf_cache):
    snapshot = _cache_snapshot(
        empty_hf_cache, "Qwen/CodeQwen1.5-7B", "config.json", "model.safetensors"
    )
    assert locate_weights(lookup("codeqwen")) == snapshot


def test_hf_snapshot_without_weights_is_unavailable(empty_hf_cache):
    snapshot = _cache_snapshot(empty_hf_cache, "Qwen/CodeQwen1.5-7B", "config.json")
    with pytest.raises(ModelUnavailable) as caught:
        locate_weights(lookup("codeqwen"))
    assert str(caught.value) == (
        f"the cached snapshot of Qwen/CodeQwen1.5-7B ({snapshot}) lacks weights "
        "(model*.safetensors or pytorch_model*.bin)"
    )


def test_builtin_model_is_not_located_here():
    with pytest.raises(ValueError, match="'tiny' is built by leakbench.tiny"):
        locate_weights(lookup("tiny"))
