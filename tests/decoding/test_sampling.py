"""Sampling: top-p agrees with transformers' own warper, seeded runs repeat, and a branch's sample does not
depend on which other branches share its steps."""

from __future__ import annotations

import random

import pytest
import torch
from transformers.generation.logits_process import TopPLogitsWarper

from parallel_decoding.decoding import SamplingSettings, SharedPrefixDecoder, TokenChooser, top_p_filter
from parallel_decoding.decoding.prefix import split_shared_prefix


@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.99])
def test_top_p_matches_transformers(top_p):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 300, generator=gen) * 3
    ours = top_p_filter(logits, top_p)
    theirs = TopPLogitsWarper(top_p)(None, logits.clone())
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))


def test_greedy_is_argmax_and_sampling_follows_temperature_and_nucleus():
    logits = torch.tensor([[0.0, 5.0, 1.0, -1.0]] * 800)
    assert TokenChooser(SamplingSettings(), 1).choose(logits[:1], [0]) == [1]
    # T=5: p = softmax([0, 1, .2, -.2]) = [.174, .472, .212, .142]; top_p=.7 keeps {1, 2, 0} (mass before 0 is .684)
    chooser = TokenChooser(SamplingSettings(do_sample=True, temperature=5.0, top_p=0.7, seed=1), 800)
    picks = chooser.choose(logits, list(range(800)))
    assert picks.count(3) == 0
    expected = torch.tensor([0.0, 1.0, 0.2]).softmax(0).tolist()
    for token, p in zip((0, 1, 2), expected):
        assert abs(picks.count(token) / 800 - p) < 0.06


def test_seeded_sampling_repeats_and_ignores_step_sharing(qwen3_models):
    model, _, stop_ids = qwen3_models["sdpa"]
    rng = random.Random(17)
    prompts = [[rng.randrange(151643) for _ in range(rng.randint(5, 9))] for _ in range(4)]
    prefix, branches = split_shared_prefix([[1, 2, 3] + p for p in prompts])
    decoder = SharedPrefixDecoder(model)
    settings = SamplingSettings(do_sample=True, temperature=0.8, top_p=0.9, seed=3)
    runs = [decoder.generate(prefix, branches, layout, max_new_tokens=10, stop_token_ids=stop_ids,
                             sampling=settings).sequences for layout in ("batch_shared", "in_sequence")]
    again = decoder.generate(prefix, branches, "batch_shared", max_new_tokens=10, stop_token_ids=stop_ids,
                             sampling=settings).sequences
    greedy = decoder.generate(prefix, branches, "batch_shared", max_new_tokens=10, stop_token_ids=stop_ids).sequences
    assert runs[0] == runs[1] == again
    assert runs[0] != greedy  # sampling actually sampled
    other_seed = SamplingSettings(do_sample=True, temperature=0.8, top_p=0.9, seed=4)
    assert decoder.generate(prefix, branches, "in_sequence", max_new_tokens=10, stop_token_ids=stop_ids,
                            sampling=other_seed).sequences != runs[0]
    # every branch draws from its own generator (seeded by seed and branch index): when the others stop after one
    # token, branch 2 decodes alone for 9 steps and still samples exactly what it sampled among all four
    budgets = [1, 1, 10, 1]
    partly = decoder.generate(prefix, branches, "in_sequence", max_new_tokens=10, stop_token_ids=stop_ids,
                              sampling=settings, max_new_tokens_per_branch=budgets).sequences
    assert partly[2] == runs[0][2]


def test_split_shared_prefix_uses_token_ids_and_keeps_a_token_per_branch():
    assert split_shared_prefix([[1, 2, 3, 4], [1, 2, 5]]) == ([1, 2], [[3, 4], [5]])
    assert split_shared_prefix([[1, 2, 3]]) == ([1, 2], [[3]])
    assert split_shared_prefix([[1, 2], [1, 2, 3]]) == ([1], [[2], [2, 3]])
    with pytest.raises(ValueError):
        split_shared_prefix([[1], []])
