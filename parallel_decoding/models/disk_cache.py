"""Build-once directories (de-quantised GGUF models, the Qwen tokenizer) that concurrent runs may ask for at the same
moment: a multirun's jobs or DDP ranks starting together. One process builds under a file lock and the others wait
and then load, so no run ever reads a directory another is replacing."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

COMPLETE_MARKER = ".conversion_complete"  # the name caches written before this module already carry


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """``build(staging_dir)`` fills a fresh directory that is renamed to ``target`` once complete; a crash mid-way
    leaves no half-written cache that later runs would trust."""
    if (target / COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if (target / COMPLETE_MARKER).is_file():  # built by the process we waited for
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            build(staging)
            (staging / COMPLETE_MARKER).touch()
            shutil.rmtree(target, ignore_errors=True)  # an unmarked leftover of an older layout
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
