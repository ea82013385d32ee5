"""Models for the engine tests: tiny random Llama / Qwen2 / Qwen3 whose outputs actually depend on context.

A freshly initialised tiny model (std 0.02, tied embeddings) mostly repeats its last input token, so a broken
mask would go unnoticed. Scaling the decoder layers' matrices makes attention and MLPs dominate the residual
stream: greedy continuations then vary token by token and change when the visible context changes (the
``test_leaky_mask_is_detected`` test checks that this sensitivity is real)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from parallel_decoding.models import build_tiny_qwen3

SHARPEN = 8.0
SMALL_VOCAB = 512


def sharpen(model: torch.nn.Module, factor: float = SHARPEN) -> torch.nn.Module:
    with torch.no_grad():
        for param in model.model.layers.parameters():
            if param.ndim == 2:
                param.mul_(factor)
    return model.eval()


def small_model(family: str, attn: str) -> torch.nn.Module:
    common = dict(vocab_size=SMALL_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, bos_token_id=None,
                  eos_token_id=SMALL_VOCAB - 1, pad_token_id=0)
    config = LlamaConfig(**common) if family == "llama" else Qwen2Config(**common)
    config._attn_implementation = attn
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1 if family == "llama" else 2)
        model = (LlamaForCausalLM if family == "llama" else Qwen2ForCausalLM)(config)
    return sharpen(model)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest single-threaded; two threads on a shared 2-core machine mostly spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def qwen3_models():
    """The tiny_qwen3 test model (real Qwen vocabulary), sharpened, under both attention implementations."""
    out = {}
    for attn in ("sdpa", "eager"):
        bundle = build_tiny_qwen3(attn_implementation=attn)
        out[attn] = (sharpen(bundle.model), bundle.tokenizer, bundle.stop_token_ids)
    return out


@pytest.fixture(scope="session")
def small_models():
    return {(family, attn): small_model(family, attn) for family in ("llama", "qwen2") for attn in ("sdpa", "eager")}
