"""Layouts as data: who sees whom, which positions tokens get, and how finished branches are dropped.

Invariants of one-sequence parallel decoding (yuyijiong/parallel-decoding-in-one-sequence, arXiv 2503.20533): a
branch token sees exactly the prefix and its own earlier tokens (and itself); positions continue from the prefix per
branch; blocked entries are the dtype's minimum in a float mask, never a bool."""

from __future__ import annotations

import pytest
import torch

from parallel_decoding.decoding import PAD, TRUNK, BatchSharedLayout, InSequenceLayout, additive_mask, make_layout

P = 4


def visible_sets(fwd, row: int) -> list[set[int]]:
    mask = fwd.attention_mask[row, 0]
    return [set((mask[i] == 0).nonzero().squeeze(1).tolist()) for i in range(mask.shape[0])]


def test_in_sequence_query_sees_prefix_and_own_branch_only():
    layout = InSequenceLayout(3)
    layout.start(P)
    fwd = layout.place({0: [10, 11], 1: [20, 21, 22], 2: [30]})
    # slots: 0-3 prefix, 4-5 branch 0, 6-8 branch 1, 9 branch 2
    assert fwd.input_ids.tolist() == [[10, 11, 20, 21, 22, 30]]
    assert fwd.position_ids.tolist() == [[P, P + 1, P, P + 1, P + 2, P]]
    prefix = set(range(P))
    assert visible_sets(fwd, 0) == [prefix | {4}, prefix | {4, 5}, prefix | {6}, prefix | {6, 7},
                                    prefix | {6, 7, 8}, prefix | {9}]
    assert fwd.logits_to_keep.tolist() == [[1, 4, 5]]
    assert fwd.branch_logit == {0: (0, 0), 1: (0, 1), 2: (0, 2)}
    step = layout.place({0: [12], 1: [23], 2: [31]})  # slots 10, 11, 12
    assert step.position_ids.tolist() == [[P + 2, P + 3, P + 1]]
    assert visible_sets(step, 0) == [prefix | {4, 5, 10}, prefix | {6, 7, 8, 11}, prefix | {9, 12}]
    assert step.attention_mask.shape == (1, 1, 3, 13)


def test_in_sequence_retire_drops_the_branch_slots_and_its_queries():
    layout = InSequenceLayout(3)
    layout.start(P)
    layout.place({0: [1], 1: [2, 3], 2: [4]})
    edit = layout.retire([1])
    assert edit.rows is None and edit.slots.tolist() == [0, 1, 2, 3, 4, 7]
    step = layout.place({0: [5], 2: [6]})
    prefix = set(range(P))
    assert visible_sets(step, 0) == [prefix | {4, 6}, prefix | {5, 7}]
    assert step.position_ids.tolist() == [[P + 1, P + 1]]
    with pytest.raises(ValueError):
        layout.place({1: [9]})


def test_batch_shared_pads_are_invisible_and_rows_are_dropped():
    layout = BatchSharedLayout(3, pad_token_id=0)
    layout.start(P)
    assert layout.rows_for_prefix() == 3
    fwd = layout.place({0: [10, 11, 12], 1: [20], 2: [30, 31]})
    assert fwd.input_ids.tolist() == [[10, 11, 12], [20, 0, 0], [30, 31, 0]]
    assert fwd.logits_to_keep.tolist() == [[2], [0], [1]]
    prefix = set(range(P))
    assert visible_sets(fwd, 1) == [prefix | {4}, {5}, {6}]  # pads see only themselves
    assert visible_sets(fwd, 2) == [prefix | {4}, prefix | {4, 5}, {6}]
    assert layout.slots.branch[1].tolist() == [TRUNK] * P + [1, PAD, PAD]
    step = layout.place({0: [13], 1: [21], 2: [32]})
    assert step.position_ids.tolist() == [[P + 3], [P + 1], [P + 2]]
    assert visible_sets(step, 1) == [prefix | {4, 7}]
    edit = layout.retire([0])
    assert edit.rows.tolist() == [1, 2] and edit.slots is None
    step = layout.place({1: [22], 2: [33]})
    assert step.branch_logit == {1: (0, 0), 2: (1, 0)}
    assert visible_sets(step, 0) == [prefix | {4, 7, 8}]


def test_additive_mask_is_float_with_dtype_min():
    allowed = torch.tensor([[[True, False], [True, True]]])
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        mask = additive_mask(allowed, dtype)
        assert mask.dtype == dtype and mask.shape == (1, 1, 2, 2)
        assert mask[0, 0, 0, 1] == torch.finfo(dtype).min and mask[0, 0, 1].eq(0).all()
    with pytest.raises(ValueError):
        additive_mask(torch.tensor([[[False, False]]]), torch.float32)


def test_make_layout_rejects_unknown_kinds():
    assert isinstance(make_layout("in_sequence", 2), InSequenceLayout)
    with pytest.raises(ValueError, match="unknown layout"):
        make_layout("columnar", 2)


def test_full_visibility_is_the_uncached_mask_of_the_final_layout():
    """Prefix causal, each branch causal over prefix + itself: what one forward over everything needs."""
    layout = InSequenceLayout(2)
    layout.start(3)
    layout.place({0: [1, 2], 1: [3]})
    layout.place({0: [4], 1: [5]})
    allowed = layout.full_visibility()[0]
    # slots: 0-2 prefix, 3-4 branch 0, 5 branch 1, 6 branch 0, 7 branch 1
    rows = [set(allowed[i].nonzero().squeeze(1).tolist()) for i in range(8)]
    assert rows == [{0}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4}, {0, 1, 2, 5}, {0, 1, 2, 3, 4, 6},
                    {0, 1, 2, 5, 7}]
