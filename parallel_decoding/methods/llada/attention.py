"""Block attention: the one mask shared by training and semi-autoregressive sampling.

The sequence is cut into blocks: block 0 is the prompt (all of it), then the answer (or, in pretraining, the
whole text) in blocks of ``block_length`` tokens. **A query in block i sees every key in blocks 0..i**: the
prompt, the earlier blocks and its own block, never a later block.

Why this choice: the sampler commits blocks left to right, and while it decodes block i the later blocks are
still all masks, carrying no information. Training with the same mask means the model never learns to rely on
context the sampler cannot give it, and it makes the prefix exact: prompt and finished blocks never see the
block being decoded, so their keys and values can be cached without approximation (``sampler.py``). The prompt
sees only itself, as it does in sampling. The reference (Qwen3llada) hid the *earlier* answer blocks from a
block, the opposite of what sampling provides, and its bias never reached attention anyway.
"""

from __future__ import annotations

import torch

BLOCKED = torch.finfo(torch.float32).min  # clamped to the compute dtype's own minimum by the model


def block_ids(seq_len: int, prompt_lengths: torch.Tensor, block_length: int) -> torch.Tensor:
    """``[B, L]`` block index of each position: 0 inside the prompt, then 1, 2, ... every ``block_length``."""
    if block_length < 1:
        raise ValueError(f"block_length must be >= 1, got {block_length}")
    positions = torch.arange(seq_len, device=prompt_lengths.device)[None, :]
    offset = positions - prompt_lengths[:, None]
    return torch.where(offset < 0, torch.zeros_like(offset), 1 + offset.div(block_length, rounding_mode="floor"))


def block_attention_bias(query_blocks: torch.Tensor, key_blocks: torch.Tensor) -> torch.Tensor:
    """``[B, 1, Q, K]`` additive bias: 0 where ``key_block <= query_block``, a large negative number elsewhere."""
    visible = key_blocks[:, None, None, :] <= query_blocks[:, None, :, None]
    return torch.zeros(visible.shape, dtype=torch.float32, device=visible.device).masked_fill(~visible, BLOCKED)


def training_block_bias(seq_len: int, prompt_lengths: torch.Tensor, block_length: int) -> torch.Tensor:
    """The bias of a training batch (``prompt_lengths`` all 0 in pretraining: the text is cut from its start)."""
    blocks = block_ids(seq_len, prompt_lengths, block_length)
    return block_attention_bias(blocks, blocks)
