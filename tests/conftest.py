"""Shared fixtures: the tiny Qwen3 unit-test model, built once per session."""

from __future__ import annotations

import pytest

from parallel_decoding.models import build_tiny_qwen3


@pytest.fixture(scope="session")
def tiny_bundle():
    return build_tiny_qwen3()
