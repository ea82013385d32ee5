"""Parallel branch decoding through the shared-prefix engine, and the branch-collapse diagnostic.

    result = branch_generate(model, trunk_ids, [q1_ids, q2_ids], mask="isolated", align="left",
                             max_new_tokens=32, stop_token_ids=[eos])

All branches advance together: the trunk is prefilled once (ordinary causal positions, which the 2D scheme gives
the trunk), every branch prompt is placed in one forward, then each step is ONE forward carrying one new token per
active branch (``BranchLayout``), never the reference's round-robin of one branch per call. A branch's first answer
token comes from its prompt's last logits (no re-fed token, no column shift, unlike the reference), and its
coordinates equal those of an uncached forward over the final layout, which training uses.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from parallel_decoding.decoding import DecodeResult, SharedPrefixDecoder
from parallel_decoding.methods.branch2d.layout import BranchLayout
from parallel_decoding.methods.branch2d.rope import patched_channels


def require_patch(model: nn.Module) -> None:
    if patched_channels(model) is None:
        raise ValueError("the model is not patched with Interleaved2DRoPE: call apply_interleaved_2d_rope (or load "
                         "a branch2d checkpoint with load_branch2d_model)")


def branch_generate(model: nn.Module, prefix_ids: Sequence[int], branch_ids: Sequence[Sequence[int]],
                    mask: str = "isolated", align: str = "left", x_stride: int = 32,
                    tokenizer: PreTrainedTokenizerBase | None = None, pad_token_id: int | None = None,
                    **generate_kwargs) -> DecodeResult:
    """Decode every branch after the shared trunk, all branches in each forward (``SharedPrefixDecoder.generate``
    keyword arguments: max_new_tokens, stop_token_ids, stop_strings, sampling, ...)."""
    require_patch(model)
    decoder = SharedPrefixDecoder(model, pad_token_id=pad_token_id, tokenizer=tokenizer)
    layout = BranchLayout(len(branch_ids), decoder.dtype, mask=mask, align=align, x_stride=x_stride)
    return decoder.generate(prefix_ids, branch_ids, layout=layout, **generate_kwargs)


def final_layout(prefix_len: int, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
                 mask: str, align: str, x_stride: int, dtype: torch.dtype = torch.float32) -> BranchLayout:
    """The layout of a finished decode (or of a training example), placed at once: each branch's prompt and its
    continuation *except the last token*. That last token (a stop token, or the one that used up the budget) is
    output only: decoding never feeds it back, so no other branch may see it (it matters under the column mask)."""
    layout = BranchLayout(len(prompts), dtype, mask=mask, align=align, x_stride=x_stride,
                          prompt_lengths=[len(p) for p in prompts])
    layout.start(prefix_len)
    layout.place({b: branch_inputs(p, c) for b, (p, c) in enumerate(zip(prompts, continuations))})
    return layout


def branch_inputs(prompt: Sequence[int], continuation: Sequence[int]) -> list[int]:
    """The tokens a branch runs through the model: its prompt and all but the last continuation token."""
    return [int(t) for t in prompt] + [int(t) for t in continuation[:-1]]


def mean_pairwise_cosine(vectors: torch.Tensor) -> float | None:
    """Mean cosine similarity over all pairs of rows of ``[n, d]``; None for fewer than two rows."""
    n = vectors.shape[0]
    if n < 2:
        return None
    unit = torch.nn.functional.normalize(vectors.float(), dim=-1)
    sims = unit @ unit.T
    return float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))


@torch.no_grad()
def branch_collapse(model: nn.Module, prefix_ids: Sequence[int], prompts: Sequence[Sequence[int]],
                    continuations: Sequence[Sequence[int]], mask: str = "isolated", align: str = "left",
                    x_stride: int = 32) -> float | None:
    """Branch-collapse diagnostic: each branch's final hidden state (the decoder's normed last-layer output,
    averaged over the slots that predicted its continuation: the prompt's last token, then every continuation
    token but the last) and the mean pairwise cosine similarity between branches.
    Near 1 means the branches have become alike (the reference's failure mode: 93-99%). None with < 2 branches
    that have a continuation."""
    keep = [b for b, c in enumerate(continuations) if len(c) > 0]
    if len(keep) < 2:
        return None
    dtype = next(model.parameters()).dtype
    layout = final_layout(len(prefix_ids), prompts, continuations, mask, align, x_stride, dtype)
    inputs = [branch_inputs(p, c) for p, c in zip(prompts, continuations)]
    ids = list(prefix_ids) + [t for tokens in inputs for t in tokens]
    device = next(model.parameters()).device
    hidden = model.get_decoder()(input_ids=torch.tensor([ids], device=device),
                                 attention_mask=layout.full_mask().to(device),
                                 position_ids=layout.full_positions().to(device), use_cache=False).last_hidden_state[0]
    means, start = [], len(prefix_ids)
    for b, (tokens, c) in enumerate(zip(inputs, continuations)):
        start += len(tokens)
        if b in keep:  # the last len(c) input slots predicted the continuation
            means.append(hidden[start - len(c): start].mean(dim=0))
    return mean_pairwise_cosine(torch.stack(means))
