"""Shared fixtures: the tiny Qwen3 unit-test model, built once per session; published checkpoints kept out of
the checkout."""

from __future__ import annotations

import pytest

from parallel_decoding.models import build_tiny_qwen3


@pytest.fixture(scope="session")
def tiny_bundle():
    return build_tiny_qwen3()


@pytest.fixture(autouse=True, scope="session")
def published_checkpoints_in_a_temp_dir(tmp_path_factory):
    """Training publishes to ``paths.checkpoint_dir`` (the checkout's checkpoints/ by default): tests, in-process
    or through the CLI, publish into a temporary directory instead."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PARALLEL_DECODING_CHECKPOINTS", str(tmp_path_factory.mktemp("published_checkpoints")))
        yield
