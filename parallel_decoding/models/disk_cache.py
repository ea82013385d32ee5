"""Directories written whole: a cache built once (de-quantised GGUF models, the Qwen tokenizer) and a directory
replaced by a newer copy (a published checkpoint). Both fill a staging directory beside the target and swap it in
only when complete, so a crash mid-way never leaves a half-written directory that a later run would trust. Builds
also take a file lock: the jobs of a multirun or the ranks of a DDP run that start together build once, and none
reads a directory another is replacing."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

COMPLETE_MARKER = ".conversion_complete"  # the name caches written before this module already carry


def replace_directory(target: Path, fill: Callable[[Path], object]) -> Path:
    """``fill(staging)`` writes the new contents; then an older ``target`` is moved aside and the staging
    directory takes its place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        fill(staging)
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_once(target: Path, build: Callable[[Path], object]) -> Path:
    """``target``, built by ``build(staging_dir)`` unless a complete build is already there."""
    if (target / COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if (target / COMPLETE_MARKER).is_file():  # built by the process we waited for
            return target

        def fill(staging: Path) -> None:
            build(staging)
            (staging / COMPLETE_MARKER).touch()

        return replace_directory(target, fill)  # an unmarked leftover (an older layout, a crash) is replaced
