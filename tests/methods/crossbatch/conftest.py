"""Fixtures for the cross-batch tests: one tiny Qwen3 per session, copied for every test that changes it."""

from __future__ import annotations

import copy

import pytest
import torch

from parallel_decoding.models import build_tiny_qwen3
from parallel_decoding.models.bundle import ModelBundle


@pytest.fixture(scope="session")
def crossbatch_base() -> ModelBundle:
    """Never handed to a backend (no hooks) and never changed: tests take copies."""
    return build_tiny_qwen3()


@pytest.fixture
def tiny(crossbatch_base) -> ModelBundle:
    """A private copy of the tiny model (tied head, as built)."""
    return ModelBundle(model=copy.deepcopy(crossbatch_base.model), tokenizer=crossbatch_base.tokenizer,
                       name=crossbatch_base.name)


@pytest.fixture
def lively(crossbatch_base) -> ModelBundle:
    """A copy whose LM head is untied and random: the tied tiny model only repeats its last input token, which
    would make "same tokens as HF generate" a weak check."""
    model = copy.deepcopy(crossbatch_base.model)
    head = model.get_output_embeddings()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        head.weight = torch.nn.Parameter(torch.randn_like(head.weight))
    model.config.tie_word_embeddings = False
    return ModelBundle(model=model, tokenizer=crossbatch_base.tokenizer, name=crossbatch_base.name)
