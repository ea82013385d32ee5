"""Decode the questions of one batch in lockstep, mixing each row's hidden state with its group's before the head.

    result = crossbatch_generate(model, prompts, group_ids=[0, 0, 0], max_new_tokens=32,
                                 stop_token_ids=[eos_id], pad_token_id=pad_id)
    result.sequences  # one list of generated ids per prompt, stop token included

Prompts are left-padded (the last prompt token of every row in the last column), so every row is at the same
step of its answer at every forward, as in teacher-forced training. Each step is one ordinary forward of the
model for all rows (``CrossBatchModel.forward_hidden``: a KV cache, position ids counted from each row's first
real token, exactly as HF ``generate`` with left padding), then ``lm_head(mix(h))`` picks the next tokens. The
mixed state never enters the model: the KV cache holds only what the unmodified forward wrote, so mixing
changes which tokens are chosen and nothing else. A finished row keeps receiving the pad token (as in HF
``generate``) and stops being a mixing source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from parallel_decoding.decoding.sampling import SamplingSettings, TokenChooser
from parallel_decoding.methods.crossbatch.model import CrossBatchModel, left_padded_positions


@dataclass
class CrossBatchGeneration:
    sequences: list[list[int]]  # generated ids per row, the stop token included when one was produced
    forward_passes: int = 0
    cache: Any = field(default=None, repr=False)  # the final KV cache, when asked for (tests)


def left_pad(prompts: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` with every prompt right-aligned."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            input_ids[row, width - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
            attention_mask[row, width - len(prompt):] = 1
    return input_ids, attention_mask


@torch.no_grad()
def crossbatch_generate(
    model: CrossBatchModel,
    prompts: Sequence[Sequence[int]],
    group_ids: Sequence[int] | None = None,
    *,
    max_new_tokens: int,
    stop_token_ids: Sequence[int],
    pad_token_id: int,
    sampling: SamplingSettings | None = None,
    mixing: bool = True,
    return_cache: bool = False,
) -> CrossBatchGeneration:
    """Generate for every prompt; rows with equal ``group_ids`` mix (default: all rows are one group)."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every row needs a non-empty prompt")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    rows = len(prompts)
    device = next(model.parameters()).device
    groups = torch.tensor(list(group_ids) if group_ids is not None else [0] * rows, dtype=torch.long, device=device)
    if groups.numel() != rows:
        raise ValueError(f"{len(groups)} group ids for {rows} prompts")
    input_ids, attention_mask = left_pad(prompts, pad_token_id)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    position_ids = left_padded_positions(attention_mask)
    stops = {int(t) for t in stop_token_ids}
    chooser = TokenChooser(sampling or SamplingSettings(), rows)

    outputs = model.forward_hidden(input_ids, attention_mask, position_ids, use_cache=True)
    passes = 1
    cache = model.returned_cache(outputs)
    sequences: list[list[int]] = [[] for _ in range(rows)]
    finished = [False] * rows
    for step in range(max_new_tokens):
        active = torch.tensor([not f for f in finished], dtype=torch.bool, device=device)
        logits = model.logits(model.hidden_states(outputs, -1), groups, active, mixing=mixing)
        live = [r for r in range(rows) if not finished[r]]
        next_tokens = [pad_token_id] * rows
        for row, token in zip(live, chooser.choose(logits[live], live)):
            sequences[row].append(token)
            next_tokens[row] = token
            finished[row] = token in stops
        if all(finished) or step == max_new_tokens - 1:
            break
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((rows, 1))], dim=1)
        position_ids = position_ids[:, -1:] + 1
        step_ids = torch.tensor(next_tokens, dtype=torch.long, device=device).unsqueeze(1)
        outputs = model.forward_hidden(step_ids, attention_mask, position_ids, cache=cache, use_cache=True)
        passes += 1
        cache = model.returned_cache(outputs)
    return CrossBatchGeneration(sequences=sequences, forward_passes=passes, cache=cache if return_cache else None)
