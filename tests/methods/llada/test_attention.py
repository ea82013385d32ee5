"""Block attention: a block sees the prompt, the earlier blocks and itself, in training as in sampling."""

from __future__ import annotations

import torch

from parallel_decoding.methods.llada.attention import block_attention_bias, block_ids, training_block_bias


def test_block_ids_by_hand():
    assert block_ids(7, torch.tensor([2, 0]), 2).tolist() == [[0, 0, 1, 1, 2, 2, 3], [1, 1, 2, 2, 3, 3, 4]]


def test_bias_by_hand():
    bias = training_block_bias(5, torch.tensor([1]), 2)[0, 0]  # blocks: [0, 1, 1, 2, 2]
    visible = (bias == 0).int().tolist()
    assert visible == [
        [1, 0, 0, 0, 0],  # the prompt sees only the prompt
        [1, 1, 1, 0, 0],  # block 1 sees the prompt and itself
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1],  # block 2 sees the prompt, block 1 and itself
        [1, 1, 1, 1, 1],
    ]
    assert bias.min() < -1e30


def test_rows_with_different_prompt_lengths_get_their_own_blocks():
    bias = training_block_bias(4, torch.tensor([1, 3]), 2)
    assert (bias[1, 0, :3, 3] < 0).all() and (bias[1, 0, 3, :] == 0).all()
    assert (bias[0, 0, 1, 3] < 0) and (bias[0, 0, 3, 1] == 0)


def test_block_bias_changes_the_logits_and_hides_later_blocks(llada_bundle):
    model = llada_bundle.model
    ids = torch.randint(0, 4000, (1, 10), generator=torch.Generator().manual_seed(0))
    bias = training_block_bias(10, torch.tensor([4]), 3)  # prompt 0-3, blocks 4-6, 7-9
    later = ids.clone()
    later[:, 7:] += 5
    with torch.no_grad():
        free = model(input_ids=ids).logits
        blocked = model(input_ids=ids, attention_bias=bias).logits
        blocked_later = model(input_ids=later, attention_bias=bias).logits
    assert (free - blocked).abs().max() > 1e-3
    torch.testing.assert_close(blocked[:, :7], blocked_later[:, :7])  # prompt and block 1 never see block 2


def test_a_block_biased_forward_equals_the_forward_cut_at_the_block_end(llada_bundle):
    """Why the sampler may stop its forward at the current block's end under block attention."""
    model = llada_bundle.model
    ids = torch.randint(0, 4000, (2, 12), generator=torch.Generator().manual_seed(1))
    prompt = torch.tensor([4, 4])
    with torch.no_grad():
        full = model(input_ids=ids, attention_bias=training_block_bias(12, prompt, 4)).logits
        cut = model(input_ids=ids[:, :8], attention_bias=training_block_bias(8, prompt, 4)).logits
    torch.testing.assert_close(full[:, :8], cut, atol=1e-5, rtol=1e-5)


def test_query_and_key_blocks_may_differ_in_length():
    bias = block_attention_bias(torch.tensor([[2, 2]]), torch.tensor([[0, 1, 2, 3]]))
    assert (bias[0, 0] == 0).int().tolist() == [[1, 1, 1, 0], [1, 1, 1, 0]]
