"""BranchLayout on hand-built cases: 2D coordinates (left / right alignment), the isolated and column masks."""

from __future__ import annotations

import pytest
import torch

from parallel_decoding.decoding import TRUNK
from parallel_decoding.methods.branch2d.layout import BranchLayout

T = 3  # trunk length
PROMPTS = {0: [11, 12], 1: [21, 22, 23, 24], 2: [31]}


def placed(mask="isolated", align="left", stride=32):
    layout = BranchLayout(3, mask=mask, align=align, x_stride=stride)
    layout.start(T)
    fwd = layout.place(PROMPTS)
    return layout, fwd


def test_left_aligned_coordinates():
    layout, fwd = placed()
    s = layout.slots
    assert s.branch[0].tolist() == [TRUNK] * 3 + [0, 0, 1, 1, 1, 1, 2]
    assert s.column[0].tolist() == [0, 1, 2, 3, 4, 3, 4, 5, 6, 3]
    assert s.position[0].tolist() == s.column[0].tolist()
    assert s.x[0].tolist() == [0, 1, 2, 3 + 32, 4 + 32, 3 + 64, 4 + 64, 5 + 64, 6 + 64, 3 + 96]
    assert fwd.position_ids.shape == (3, 1, 7)  # (pos1d, x, y) of the new tokens only
    assert fwd.position_ids[1, 0].tolist() == s.x[0, 3:].tolist()


def test_right_alignment_ends_prompts_in_one_column_and_decoding_continues_there():
    layout, _ = placed(align="right", stride=10)
    s = layout.slots
    assert s.column[0].tolist() == [0, 1, 2, 5, 6, 3, 4, 5, 6, 6]
    assert s.x[0, 3:].tolist() == [15, 16, 23, 24, 25, 26, 36]
    fwd = layout.place({0: [1], 1: [2], 2: [3]})  # first generated token of each branch: one column, column 7
    assert fwd.position_ids[2, 0].tolist() == [7, 7, 7]
    assert fwd.position_ids[1, 0].tolist() == [17, 27, 37]


def test_isolated_mask_sees_trunk_and_own_branch():
    layout, fwd = placed()
    allowed = layout.full_visibility()[0]
    branch = layout.slots.branch[0]
    for q in range(len(branch)):
        for k in range(len(branch)):
            expected = k <= q and (branch[k] == TRUNK or branch[k] == branch[q])
            assert bool(allowed[q, k]) == expected, (q, k)
    assert fwd.attention_mask.shape == (1, 1, 7, 10) and fwd.attention_mask.dtype == torch.float32


def test_column_mask_is_the_reference_rule():
    layout, _ = placed(mask="column", align="right")
    layout.place({0: [1], 1: [2], 2: [3]})
    allowed = layout.full_visibility()[0]
    col = layout.slots.column[0]
    for q in range(len(col)):
        for k in range(len(col)):
            assert bool(allowed[q, k]) == (bool(col[k] < col[q]) or q == k), (q, k)
    assert layout.retire([2]) is None and layout.active == [0, 1]  # finished branches stay visible


def test_isolated_retire_drops_the_branch_slots():
    layout, _ = placed()
    edit = layout.retire([1])
    assert edit.slots.tolist() == [0, 1, 2, 3, 4, 9]
    assert layout.slots.branch[0].tolist() == [TRUNK] * 3 + [0, 0, 2]


def test_invalid_options():
    with pytest.raises(ValueError, match="align='right'"):
        BranchLayout(2, mask="column", align="left")
    with pytest.raises(ValueError, match="mask"):
        BranchLayout(2, mask="diagonal")
    layout = BranchLayout(2)
    layout.start(2)
    with pytest.raises(ValueError, match="every branch"):
        layout.place({0: [1]})


def test_masks_are_float_additive_without_infinities():
    for dtype in (torch.float32, torch.bfloat16):
        layout = BranchLayout(3, dtype, mask="column", align="right")
        layout.start(T)
        layout.place(PROMPTS)
        mask = layout.full_mask()
        assert mask.dtype == dtype and torch.isfinite(mask).all()
        assert ((mask == 0).sum(dim=-1) >= 1).all()  # every row sees at least itself
