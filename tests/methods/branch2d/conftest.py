"""Tiny patched models for the branch2d tests (sharpened so that outputs depend on context and positions)."""

from __future__ import annotations

import pytest
import torch

from parallel_decoding.models import build_tiny_qwen3
from tests.decoding.conftest import sharpen, small_model


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_qwen3():
    """(model, tokenizer, stop ids): the sharpened tiny_qwen3, fp32, sdpa, unpatched (tests patch copies)."""
    bundle = build_tiny_qwen3(attn_implementation="sdpa")
    return sharpen(bundle.model), bundle.tokenizer, bundle.stop_token_ids


@pytest.fixture(scope="module")
def small_models():
    return {family: small_model(family, "sdpa") for family in ("llama", "qwen2")}
