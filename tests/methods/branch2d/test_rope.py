"""Interleaved2DRoPE: x = y = pos1d reproduces the unpatched model exactly; the listed channels (and only they)
react to x and y; the channel set survives save/load."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from parallel_decoding.decoding import additive_mask
from parallel_decoding.methods.branch2d.rope import (CONFIG_KEY, Interleaved2DRoPE, RopeChannels,
                                                     apply_interleaved_2d_rope, default_channels, patch_from_config,
                                                     patched_channels, stack_positions)


def logits(model, ids, positions):
    """A prepared 4D causal mask, as every branch2d caller passes (2D positions then pass through untouched)."""
    n = ids.shape[1]
    mask = additive_mask(torch.ones(n, n, dtype=torch.bool).tril().expand(ids.shape[0], -1, -1), torch.float32)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits


def inputs(seed: int = 0, vocab: int = 500, rows: int = 2, length: int = 12):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (rows, length), generator=gen)
    pos = (torch.arange(length) + torch.tensor([[0], [5]])[:rows]).long()
    return ids, pos


@pytest.mark.parametrize("channels", [None, ((0, 5), (2, 7)), ((7,), ())])
def test_x_equals_y_equals_pos1d_reproduces_unpatched_qwen3(tiny_qwen3, channels):
    model, _, _ = tiny_qwen3
    ids, pos = inputs()
    expected = logits(model, ids, pos)
    patched = copy.deepcopy(model)
    apply_interleaved_2d_rope(patched, *(channels or (None, None)))
    assert torch.equal(logits(patched, ids, stack_positions(pos, pos, pos)), expected)
    assert torch.equal(logits(patched, ids, pos), expected)  # 1D position_ids: x = y = pos1d


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_x_equals_y_equals_pos1d_reproduces_unpatched_llama_qwen2(small_models, family):
    model = small_models[family]
    ids, pos = inputs(vocab=200)
    expected = logits(model, ids, pos)
    patched = copy.deepcopy(model)
    apply_interleaved_2d_rope(patched)
    assert torch.equal(logits(patched, ids, stack_positions(pos, pos, pos)), expected)
    # a uniform shift of x changes nothing (RoPE is relative); x differing between tokens does
    assert torch.allclose(logits(patched, ids, stack_positions(pos, pos + 40, pos)), expected, atol=1e-5)
    assert not torch.allclose(logits(patched, ids, stack_positions(pos, pos + 40 * (pos % 2), pos)), expected,
                              atol=1e-4)


def test_only_listed_channels_carry_x_and_y(tiny_qwen3):
    model, _, _ = tiny_qwen3
    patched = copy.deepcopy(model)
    apply_interleaved_2d_rope(patched, (1, 6), (3,))
    rope = patched.model.rotary_emb
    assert isinstance(rope, Interleaved2DRoPE)
    hidden = torch.zeros(1, 4, 8)
    pos = torch.arange(4).unsqueeze(0)
    base_cos, _ = rope(hidden, pos)
    cos, _ = rope(hidden, stack_positions(pos, pos + 100, pos + 50))
    changed = (cos != base_cos).any(dim=1)[0]  # [head_dim]
    half = changed.shape[0] // 2
    assert changed[:half].nonzero().flatten().tolist() == [1, 3, 6]
    assert torch.equal(changed[:half], changed[half:])
    # the angle of an x channel is x * inv_freq, of a y channel y * inv_freq
    inv = rope.inv_freq
    assert torch.allclose(cos[0, :, 1], torch.cos((pos[0] + 100).float() * inv[1]))
    assert torch.allclose(cos[0, :, 3], torch.cos((pos[0] + 50).float() * inv[3]))
    assert torch.allclose(cos[0, :, 0], torch.cos(pos[0].float() * inv[0]))


def test_channel_set_round_trips_through_save_pretrained(tiny_qwen3, tmp_path):
    model, _, _ = tiny_qwen3
    patched = copy.deepcopy(model)
    channels = apply_interleaved_2d_rope(patched, (2,), (5, 6))
    patched.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())[CONFIG_KEY] == channels.to_dict()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="sdpa")
    assert patched_channels(loaded) is None  # plain HF loading does not patch...
    assert patch_from_config(loaded) == channels  # ...the recorded config restores the same patch
    ids, pos = inputs()
    moved = stack_positions(pos, pos + 32, pos + 3)
    assert torch.equal(logits(loaded, ids, moved), logits(patched, ids, moved))


def test_unpatched_config_and_bad_channels_fail(tiny_qwen3):
    model, _, _ = tiny_qwen3
    with pytest.raises(ValueError, match="branch2d"):
        patch_from_config(copy.deepcopy(model))
    with pytest.raises(ValueError, match="out of range"):
        apply_interleaved_2d_rope(copy.deepcopy(model), (8,), (1,))
    with pytest.raises(ValueError, match="both x and y"):
        RopeChannels((1,), (1,))
    with pytest.raises(ValueError, match=r"\[batch, seq\]"):
        patched = copy.deepcopy(model)
        apply_interleaved_2d_rope(patched)
        patched.model.rotary_emb(torch.zeros(1, 2, 8), torch.zeros(2, 1, 2, dtype=torch.long))


def test_default_channels_scale_the_reference():
    assert default_channels(64) == RopeChannels((7, 23), (15,))  # P = [8, 16, 24] of Qwen3-4B (head_dim 128)
    small = default_channels(8)
    small.check(8)
    assert small.x_channels and small.y_channels
