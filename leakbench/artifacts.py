"""Content-addressed, atomic, locked artifacts: the one way any stage writes to the cache.

Every stage (tokenizer and weights of `tiny`, a planted model, an unlearned variant, a batch of
completions) produces a directory keyed by the hash of everything it was made from. The directory
is built under a temporary name beside its final place, a manifest with the SHA-256 of every file
is written last, and only then is it renamed into place, all under a file lock. So parallel pytest
workers build it once, an interrupted build leaves nothing a later run would trust, and a file that
was changed or truncated afterwards is detected by its hash and the artifact is rebuilt.

Under a multi-process launch (`accelerate launch`, leakbench.launch) process 0 alone takes the
lock, decides whether to build, writes the manifest and renames; the other processes wait for it
and return the same directory. A training stage is built `collective`ly: every process runs
`make` (each trains on its share of every batch) and only process 0 writes into the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from leakbench import launch, progress

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
    collective: bool = False,
    label: str | None = None,
) -> Path:
    """Return the artifact directory for `inputs`, calling `make(tmp_dir)` to build it if needed.

    `make` writes its files into the empty directory it is given. The inputs are recorded in the
    manifest so that an artifact says what it was made from. `collective`: under a launch, every
    process calls `make` (with the same directory) and only process 0 may write; otherwise
    process 0 alone calls it. Alone in its process, `collective` changes nothing.

    The call is a stage of the run's progress (leakbench.progress) named `label` (by default
    `stage`): built or cached, its time and the work `make` reports on `progress.current()`.
    """
    with progress.stage(label or stage) as reported:
        return _build(cache_dir, stage, inputs, make, rebuild, collective, reported)


def _build(cache_dir: Path, stage: str, inputs: dict, make: Callable[[Path], None],
           rebuild: bool, collective: bool, reported: progress.Stage) -> Path:
    key = content_key(inputs)
    stage_dir = Path(cache_dir) / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    final = stage_dir / key
    lock = FileLock(str(stage_dir / f".{key}.lock"))

    def finish(tmp: Path) -> None:
        _finish(tmp, final, stage, key, inputs)

    def make_and_finish(tmp: Path) -> None:
        make(tmp)
        finish(tmp)

    group = launch.processes()
    if group is None:
        with lock:
            if not rebuild and is_intact(final):
                reported.cached()
                return final
            tmp = _fresh_tmp(stage_dir, key)
            try:
                make_and_finish(tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return final
    if collective:
        return _build_launched(group, lock, final, rebuild, reported, everywhere=make,
                               on_main=finish)
    return _build_launched(group, lock, final, rebuild, reported, everywhere=None,
                           on_main=make_and_finish)


def _build_launched(group: launch.Processes, lock: FileLock, final: Path, rebuild: bool,
                    reported: progress.Stage, *, everywhere: Callable[[Path], None] | None,
                    on_main: Callable[[Path], None]) -> Path:
    """`build` under a launch: process 0 holds the lock and decides; every process runs
    `everywhere` (a collective make), then process 0 alone runs `on_main` while the others wait
    for it."""
    if group.is_main:
        lock.acquire()
    try:
        tmp = group.on_main(lambda: None if not rebuild and is_intact(final)
                            else _fresh_tmp(final.parent, final.name))
        if tmp is None:
            reported.cached()
            return final
        try:
            if everywhere is not None:
                everywhere(tmp)
            group.on_main(lambda: on_main(tmp))
        finally:
            if group.is_main:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if group.is_main:
            lock.release()
    return final


def _fresh_tmp(stage_dir: Path, key: str) -> Path:
    """An empty temporary directory for building `key`, named after this process; the lock is
    held, so a leftover of a killed builder is removed first."""
    for stale in stage_dir.glob(f".{key}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = stage_dir / f".{key}.tmp-{os.getpid()}"
    tmp.mkdir()
    return tmp


def _finish(tmp: Path, final: Path, stage: str, key: str, inputs: dict) -> None:
    """Write the manifest into `tmp` and rename it to `final`, replacing a previous build."""
    manifest = {"stage": stage, "key": key, "inputs": inputs, "files": _hash_files(tmp)}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    if final.exists():
        stale = final.with_name(f".{key}.stale-{os.getpid()}")
        os.replace(final, stale)
        shutil.rmtree(stale)
    os.replace(tmp, final)


def read_manifest(directory: Path) -> dict:
    return json.loads((Path(directory) / MANIFEST).read_text())
