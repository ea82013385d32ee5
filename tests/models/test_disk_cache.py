"""build_once: runs that start together (multirun jobs, DDP ranks) build a cache directory once, and none of them
ever sees it half-written or replaced under it."""

from __future__ import annotations

import threading
import time

import pytest

from parallel_decoding.models.disk_cache import COMPLETE_MARKER, build_once, replace_directory


def test_concurrent_callers_build_once_and_all_see_the_finished_directory(tmp_path):
    builds, seen, target = [], [], tmp_path / "model"

    def build(staging):
        builds.append(staging)
        (staging / "weights.bin").write_text("half")
        time.sleep(0.3)  # the others arrive while the first build is in progress
        (staging / "weights.bin").write_text("complete")

    def caller():
        got = build_once(target, build)
        seen.append((got / "weights.bin").read_text())

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and seen == ["complete"] * 4
    assert (target / COMPLETE_MARKER).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.tmp")] == []


def test_a_failed_build_leaves_nothing_that_a_later_run_would_trust(tmp_path):
    target = tmp_path / "model"

    def crash(staging):
        (staging / "weights.bin").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(target, crash)
    assert not target.exists()
    build_once(target, lambda staging: (staging / "weights.bin").write_text("complete"))
    assert (target / "weights.bin").read_text() == "complete"


def test_a_replaced_directory_is_the_old_one_until_the_new_one_is_complete(tmp_path):
    """publish() of a newer checkpoint: a crashed copy keeps the older checkpoint whole."""
    target = tmp_path / "published"
    replace_directory(target, lambda staging: (staging / "head.safetensors").write_text("v1"))

    def crash(staging):
        (staging / "head.safetensors").write_text("v2, half")
        raise OSError("no space left")

    with pytest.raises(OSError):
        replace_directory(target, crash)
    assert [p.name for p in tmp_path.iterdir()] == ["published"] and (target / "head.safetensors").read_text() == "v1"
    replace_directory(target, lambda staging: (staging / "mixer.safetensors").write_text("v2"))
    assert [p.name for p in target.iterdir()] == ["mixer.safetensors"] and len(list(tmp_path.iterdir())) == 1
