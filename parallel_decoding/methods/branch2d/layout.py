"""The 2D branch layout: a trunk (the shared context) and the questions as branches side by side in a second
position dimension, all in ONE cached sequence (after Fzkuji/Parallel-Decoding, with its bugs fixed).

Coordinates of every token (pos1d, x, y), with T the trunk length and k = b + 1 the branch number (trunk k = 0):

- trunk token j: y = j, pos1d = j, x = j. The trunk is exactly the unpatched model's causal prefix, so the
  engine's ordinary prefill computes its KV and one trunk cache serves every branch.
- token i of branch b (prompt first, then generated tokens): column y = T + offset_b + i, pos1d = y,
  x = y + x_stride * k. ``offset_b`` is 0 (``align="left"``: every branch starts right after the trunk) or
  ``P_max - P_b`` (``align="right"``: the branch *prompts* end in one column, so every answer starts in the same
  column, in training exactly as in decoding; the reference right-aligned whole training branches, answers
  included, and so put answers in other columns than decoding did).

So the x channels see a branch as its 1D continuation shifted by ``x_stride * k``: two tokens of one branch differ
by their column distance in every channel, tokens of different branches additionally by a multiple of the stride.
Positions are pure functions of (branch, index in branch, prompt lengths): a branch's coordinates never depend on
how many tokens other branches produced, so decoding needs no collision-prone "previous flat index + 1" (the
reference's decode positions).

Masks (float additive, built by ``decoding.layout.additive_mask``; a PAD slot sees only itself, never NaN):

- ``isolated``: a branch token sees the trunk and its own branch's earlier tokens (the engine's rule).
- ``column``: the reference's column-synchronous rule, key j visible to query i iff y_j < y_i or i = j: the trunk
  is causal, a branch sees every branch's earlier columns, never the same column. It needs ``align="right"``:
  with left-aligned prompts of unequal length a branch would see other branches' *future* tokens (columns they
  have not produced yet), which cached decoding cannot reproduce. Finished branches keep their slots (later
  columns of the others still see them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from parallel_decoding.decoding.layout import PAD, TRUNK, CacheEdit, Forward, InSequenceLayout, Slots, additive_mask
from parallel_decoding.methods.branch2d.rope import stack_positions

MASKS = ("isolated", "column")
ALIGNS = ("left", "right")


@dataclass
class Branch2DSlots(Slots):
    x: torch.Tensor  # branch coordinate
    column: torch.Tensor  # y


def branch_offsets(prompt_lengths: Sequence[int], align: str) -> list[int]:
    if align not in ALIGNS:
        raise ValueError(f"align must be one of {ALIGNS}, got {align!r}")
    longest = max(prompt_lengths)
    return [0 if align == "left" else longest - n for n in prompt_lengths]


def coordinates(prefix_len: int, branch: int, index: torch.Tensor, offset: int, x_stride: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pos1d, x, y) of tokens ``index`` of branch ``branch`` (0-based): the module docstring's formulas."""
    column = prefix_len + offset + index
    return column, column + x_stride * (branch + 1), column


class BranchLayout(InSequenceLayout):
    """The engine's in-sequence layout with 2D coordinates and the ``isolated`` / ``column`` masks.

    ``prompt_lengths`` fixes the alignment up front (training places prompt + answer at once); when omitted, the
    first ``place`` call (the engine's prompt placement, which lists every branch) defines it."""

    def __init__(self, num_branches: int, dtype: torch.dtype = torch.float32, mask: str = "isolated",
                 align: str = "left", x_stride: int = 32, prompt_lengths: Sequence[int] | None = None) -> None:
        super().__init__(num_branches, dtype)
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
        if align not in ALIGNS:
            raise ValueError(f"align must be one of {ALIGNS}, got {align!r}")
        if mask == "column" and align != "right":
            raise ValueError("the column mask needs align='right': with left-aligned prompts of unequal length a "
                             "branch would see columns other branches have not produced yet")
        if x_stride < 1:
            raise ValueError(f"x_stride must be >= 1, got {x_stride}")
        self.mask = mask
        self.align = align
        self.x_stride = int(x_stride)
        self.offsets: list[int] | None = None
        if prompt_lengths is not None:
            self._set_offsets(prompt_lengths)

    def _set_offsets(self, prompt_lengths: Sequence[int]) -> None:
        if len(prompt_lengths) != self.num_branches or min(prompt_lengths) < 1:
            raise ValueError(f"need one positive prompt length per branch ({self.num_branches}), got "
                             f"{list(prompt_lengths)}")
        self.offsets = branch_offsets(prompt_lengths, self.align)

    # -- coordinates ------------------------------------------------------------------------------------------
    def prefix_slots(self, prefix_len: int) -> Branch2DSlots:
        every = torch.arange(prefix_len).unsqueeze(0)
        return Branch2DSlots(branch=torch.full((1, prefix_len), TRUNK, dtype=torch.long), position=every,
                             x=every.clone(), column=every.clone())

    def _new_slots(self, branch: torch.Tensor, index: torch.Tensor) -> Branch2DSlots:
        pos1d, x, column = (torch.zeros_like(index) for _ in range(3))
        for b in branch.unique().tolist():
            if b < 0:
                continue
            where = branch == b
            pos1d[where], x[where], column[where] = coordinates(self.prefix_len, b, index[where],
                                                                self.offsets[b], self.x_stride)
        return Branch2DSlots(branch=branch, position=pos1d, x=x, column=column)

    # -- the rule ---------------------------------------------------------------------------------------------
    def visible(self, query: Slots, keys: Slots, query_slot: torch.Tensor) -> torch.Tensor:
        if self.mask == "isolated":
            return super().visible(query, keys, query_slot)
        slot = torch.arange(keys.length)
        itself = slot[None, None, :] == query_slot[:, :, None]
        earlier = keys.column[:, None, :] < query.column[:, :, None]
        real = (keys.branch[:, None, :] != PAD) & (query.branch[:, :, None] != PAD)
        return (earlier & real) | itself

    # -- lifecycle --------------------------------------------------------------------------------------------
    def place(self, tokens: Mapping[int, Sequence[int]]) -> Forward:
        if self.offsets is None:
            if sorted(tokens) != list(range(self.num_branches)):
                raise ValueError("the first placement must give every branch its prompt (it fixes the alignment)")
            self._set_offsets([len(tokens[b]) for b in range(self.num_branches)])
        return super().place(tokens)

    def retire(self, branches: Sequence[int]) -> CacheEdit | None:
        if self.mask == "isolated":
            return super().retire(branches)  # invisible to every other branch: drop its slots
        done = set(branches)
        self.active = [b for b in self.active if b not in done]
        return None

    def _forward(self, input_ids: torch.Tensor, new: Slots, keep: torch.Tensor,
                 branch_logit: dict[int, tuple[int, int]]) -> Forward:
        fwd = super()._forward(input_ids, new, keep, branch_logit)
        fwd.position_ids = stack_positions(new.position, new.x, new.column)
        return fwd

    def full_positions(self) -> torch.Tensor:
        """``[3, rows, slots]`` (pos1d, x, y) of everything placed so far (one uncached forward's positions)."""
        return stack_positions(self.slots.position, self.slots.x, self.slots.column)

    def full_mask(self) -> torch.Tensor:
        return additive_mask(self.full_visibility(), self.dtype)
