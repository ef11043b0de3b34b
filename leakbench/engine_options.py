"""vLLM engine arguments from the command line: --engine-arg KEY=VALUE and the [engine] table of
an --engine-config TOML file, parsed and validated like every option (leakbench.options).

The names are checked against vllm.EngineArgs by the engine process itself (leakbench.serving):
reading vLLM's catalogue here would import vLLM into every pytest worker.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable

from leakbench.options import OptionError, user_path

ENGINE_CONFIG_MAX_BYTES = 1024 * 1024

# Engine arguments LeakBench sets itself for every engine, from the variants it serves: a user value
# would make the engine serve something other than what the run judges. Every other key of
# vllm.EngineArgs may be given; the engine process checks the names (leakbench.serving).
RESERVED_ENGINE_ARGS = ("model", "enable_lora")
_ENGINE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PYTHON_LITERALS = ("True", "False", "None")


def parse_engine_args(pairs: Iterable[str], config: object = "") -> dict:
    """The engine arguments of a run: the [engine] table of the --engine-config file (if given),
    then each --engine-arg KEY=VALUE over it."""
    engine_args = load_engine_config(config) if config else {}
    engine_args.update(parse_engine_arg(str(text)) for text in pairs)
    return engine_args


def parse_engine_arg(text: str) -> tuple[str, object]:
    """``KEY=VALUE``; the value is JSON when it parses as JSON (2, 0.9, true, {"level": 0}), else
    the string as written. KEY may be written with dashes, as on vLLM's command line."""
    key, equals, value = text.partition("=")
    if not equals:
        raise OptionError(f"--engine-arg: {text!r} is not KEY=VALUE, e.g. tensor_parallel_size=2")
    if value.strip() in _PYTHON_LITERALS:
        raise OptionError(f"--engine-arg: {text!r}: values are JSON; write true, false or null")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    except RecursionError:
        raise OptionError(f"--engine-arg: {key.strip()}: the value nests lists or objects too "
                          "deeply to be an engine argument") from None
    return _engine_key(key, "--engine-arg"), parsed


def load_engine_config(value: object) -> dict:
    """The [engine] table of a TOML file: vllm.EngineArgs keys and their values."""
    path = user_path("--engine-config", value)
    try:
        if path.exists() and not path.is_file():  # a directory, a device or pipe never ending
            raise OptionError(f"--engine-config: {str(path)!r} is not a file; give a TOML file "
                              "with an [engine] table")
        with open(path, "rb") as file:
            content = file.read(ENGINE_CONFIG_MAX_BYTES + 1)
    except OSError as err:
        raise OptionError(f"--engine-config: cannot read {str(path)!r}: {err.strerror}") from None
    if len(content) > ENGINE_CONFIG_MAX_BYTES:
        raise OptionError(f"--engine-config: {str(path)!r} is larger than "
                          f"{ENGINE_CONFIG_MAX_BYTES // 1024} KiB; it holds an [engine] table of "
                          "engine arguments")
    try:
        data = tomllib.loads(content.decode("utf-8"))
    except UnicodeDecodeError:
        raise OptionError(f"--engine-config: {str(path)!r} is not UTF-8 text; expected a TOML "
                          "file") from None
    except RecursionError:
        raise OptionError(f"--engine-config: {str(path)!r} nests arrays or tables too deeply to "
                          "hold engine arguments") from None
    except ValueError as err:  # tomllib.TOMLDecodeError, or an integer past the digit limit
        raise OptionError(f"--engine-config: {str(path)!r} is not TOML: {err}") from None
    table = data.get("engine")
    if set(data) != {"engine"} or not isinstance(table, dict):
        raise OptionError(f"--engine-config: {str(path)!r} must hold an [engine] table of vLLM "
                          f"engine arguments and nothing else; found: {', '.join(data) or 'none'}")
    engine_args = {}
    for key, item in table.items():
        try:
            json.dumps(item)
        except RecursionError:
            raise OptionError(f"--engine-config: {key} in {str(path)!r} nests arrays or tables "
                              "too deeply to be an engine argument") from None
        except TypeError:
            raise OptionError(f"--engine-config: {key} = {item!r} in {str(path)!r}: dates and "
                              "times are no engine argument values") from None
        engine_args[_engine_key(key, "--engine-config")] = item
    return engine_args


def _engine_key(key: str, option: str) -> str:
    name = key.strip().replace("-", "_")
    if not _ENGINE_KEY.fullmatch(name):
        raise OptionError(f"{option}: {key!r} is not an engine argument name, "
                          "e.g. tensor_parallel_size")
    if name in RESERVED_ENGINE_ARGS:
        raise OptionError(f"{option}: {name} is set by LeakBench for each engine (the weights and "
                          f"adapters of the variants it serves); reserved: "
                          f"{', '.join(RESERVED_ENGINE_ARGS)}")
    return name
