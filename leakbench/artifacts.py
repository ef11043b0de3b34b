"""Content-addressed, atomic, locked artifacts: the one way any stage writes to the cache.

Every stage (tokenizer and weights of `tiny`, a planted model, an unlearned variant, a batch of
completions) produces a directory keyed by the hash of everything it was made from. The directory
is built under a temporary name beside its final place, a manifest with the SHA-256 of every file
is written last, and only then is it renamed into place, all under a file lock. So parallel pytest
workers build it once, an interrupted build leaves nothing a later run would trust, and a file that
was changed or truncated afterwards is detected by its hash and the artifact is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

MANIFEST = "manifest.json"


def content_key(inputs: dict) -> str:
    """Hash of a JSON-serializable description of an artifact's inputs (order-independent)."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_files(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): file_sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def is_intact(directory: Path) -> bool:
    """True when the directory has a manifest and every file still has its recorded hash."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return False
    return recorded == _hash_files(directory)


def build(
    cache_dir: Path,
    stage: str,
    inputs: dict,
    make: Callable[[Path], None],
    *,
    rebuild: bool = False,
) -> Path:
    """Return the artifact directory for `inputs`, calling `make(tmp_dir)` to build it if needed.

    `make` writes its files into the empty directory it is given. The inputs are recorded in the
    manifest so that an artifact says what it was made from.
    """
    key = content_key(inputs)
    stage_dir = Path(cache_dir) / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    final = stage_dir / key
    with FileLock(str(stage_dir / f".{key}.lock")):
        if not rebuild and is_intact(final):
            return final
        for stale in stage_dir.glob(f".{key}.tmp-*"):  # a killed builder's; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = stage_dir / f".{key}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            make(tmp)
            manifest = {"stage": stage, "key": key, "inputs": inputs, "files": _hash_files(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
            if final.exists():
                stale = stage_dir / f".{key}.stale-{os.getpid()}"
                os.replace(final, stale)
                shutil.rmtree(stale)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_manifest(directory: Path) -> dict:
    return json.loads((Path(directory) / MANIFEST).read_text())
