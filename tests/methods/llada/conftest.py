"""Fixtures: a fresh tiny Qwen3 converted to diffusion (never the shared ``tiny_bundle``: conversion takes over
the causal model's tensors, and training tests change them), and a fake diffusion model whose logits are a
fixed table, for sampler tests that must be exact and fast."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from parallel_decoding.methods.llada.modeling import convert_causal_to_diffusion
from parallel_decoding.models import build_tiny_qwen3
from parallel_decoding.models.bundle import ModelBundle


@pytest.fixture(scope="session")
def tiny_causal() -> ModelBundle:
    """A causal tiny_qwen3 built once (building costs seconds). Never change it or hand it to HFBackend (whose
    hook would make every later copy drag the backend along): use ``fresh_causal`` for that."""
    return build_tiny_qwen3(seed=3)


@pytest.fixture
def fresh_causal(tiny_causal) -> ModelBundle:
    return ModelBundle(model=copy.deepcopy(tiny_causal.model), tokenizer=tiny_causal.tokenizer, name="tiny_qwen3")


@pytest.fixture(scope="session")
def llada_bundle(tiny_causal) -> ModelBundle:
    """tiny_qwen3 converted to a diffusion model (eval mode); copy it before changing weights."""
    model = convert_causal_to_diffusion(copy.deepcopy(tiny_causal.model), tiny_causal.tokenizer).eval()
    return ModelBundle(model=model, tokenizer=tiny_causal.tokenizer, name="tiny_llada")


@pytest.fixture(scope="session")
def shifted_bundle(tiny_causal) -> ModelBundle:
    """tiny_qwen3 converted with ``shift_logits`` (position i read from hidden state i - 1); the same weights as
    ``llada_bundle``."""
    model = convert_causal_to_diffusion(copy.deepcopy(tiny_causal.model), tiny_causal.tokenizer,
                                        shift_logits=True).eval()
    return ModelBundle(model=model, tokenizer=tiny_causal.tokenizer, name="tiny_llada_shifted")


@pytest.fixture
def llada_copy(llada_bundle) -> ModelBundle:
    """A copy to hand to code that changes or hooks the model (HFBackend hooks it for good)."""
    return ModelBundle(model=copy.deepcopy(llada_bundle.model), tokenizer=llada_bundle.tokenizer, name="tiny_llada")


class FakeDiffusionModel(nn.Module):
    """Logits depend only on the position: ``table[position]`` ([L, V]), whatever the input. Records each call's
    input length, so tests can see what a step computed."""

    def __init__(self, table: torch.Tensor, mask_token_id: int, real_vocab_size: int | None = None) -> None:
        super().__init__()
        self.table = nn.Parameter(table.clone(), requires_grad=False)
        self.config = SimpleNamespace(mask_token_id=mask_token_id, real_vocab_size=real_vocab_size)
        self.calls: list[dict] = []

    def forward(self, input_ids, attention_bias=None, attention_mask=None, position_ids=None, cache=None,
                use_cache=False, logits_positions=None):
        self.calls.append({"input_ids": input_ids.clone(), "position_ids": position_ids.clone(),
                           "bias": attention_bias})
        batch, q_len = input_ids.shape
        first = attention_mask.shape[1] - q_len  # keys = cached prefix + queries
        logits = self.table[first:first + q_len][None].expand(batch, -1, -1).clone()
        if logits_positions is not None:
            logits = logits[:, logits_positions]
        return SimpleNamespace(logits=logits, cache=None)
