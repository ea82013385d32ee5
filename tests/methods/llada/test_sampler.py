"""The sampler: each block commits exactly block_length tokens, no masks remain, nothing
outside the current block changes, cfg 0 equals the conditional logits, T=0 is deterministic; plus the budget,
remasking, threshold decoding, the prefix cache (exact for a shifted model too), block attention, early stop,
left padding."""

from __future__ import annotations

import math

import pytest
import torch

from parallel_decoding.config import ConfigError
from parallel_decoding.methods.llada.sampler import (SamplerSettings, _Forward, diffusion_generate,
                                                     transfer_schedule)
from tests.methods.llada.conftest import FakeDiffusionModel

MASK, VOCAB, STOP = 7, 9, 6  # fake vocabulary: 0-6 text (6 = stop), 7 = mask, 8 = an unused row


def _table(rows: dict[int, dict[int, float]], length: int) -> torch.Tensor:
    """Logits ``[length, VOCAB]``: -10 everywhere except the given {position: {token: probability}} (as logs)."""
    table = torch.full((length, VOCAB), -10.0)
    for position, probs in rows.items():
        for token, prob in probs.items():
            table[position, token] = math.log(prob)
    return table


def _fake_run(table, settings, prompts=((1, 2),), stop=()):
    model = FakeDiffusionModel(table, MASK, real_vocab_size=MASK)
    trace = []
    result = diffusion_generate(model, [list(p) for p in prompts], settings, pad_token_id=0, stop_token_ids=stop,
                                on_step=lambda block, x: trace.append((block, x)))
    return result, trace, model


def test_transfer_schedule_by_hand():
    assert transfer_schedule(10, 4) == [3, 3, 2, 2]
    assert transfer_schedule(4, 4) == [1, 1, 1, 1]
    assert transfer_schedule(2, 4) == [1, 1, 0, 0]


def test_low_confidence_commits_the_most_confident_position_first_by_hand():
    # prompt at 0-1; block 1 = positions 2-3, block 2 = 4-5; one token per step
    table = _table({2: {1: 0.6, 2: 0.4}, 3: {3: 0.9, 4: 0.1}, 4: {4: 0.3, 5: 0.7}, 5: {0: 0.8, 1: 0.2}}, 6)
    settings = SamplerSettings(gen_length=4, steps=4, block_length=2, early_stop=False)
    result, trace, _ = _fake_run(table, settings)
    assert result.tokens.tolist() == [[1, 3, 5, 0]]
    states = [x[0, 2:].tolist() for _, x in trace]
    assert states == [[MASK, 3, MASK, MASK], [1, 3, MASK, MASK], [1, 3, MASK, 0], [1, 3, 5, 0]]
    assert [b for b, _ in trace] == [0, 0, 1, 1]
    assert result.forward_passes == 4 and result.steps == 4 and result.tokens_per_forward == 1.0


def test_every_block_commits_exactly_its_tokens_and_nothing_else_changes(llada_bundle):
    tokenizer = llada_bundle.tokenizer
    prompts = [tokenizer("The mayor of Ostmere is Kirbal Ren.")["input_ids"], tokenizer("Hi")["input_ids"]]
    settings = SamplerSettings(gen_length=12, steps=6, block_length=4, early_stop=False)
    trace = []
    result = diffusion_generate(llada_bundle.model, prompts, settings, pad_token_id=tokenizer.pad_token_id,
                                on_step=lambda block, x: trace.append((block, x)))
    mask = llada_bundle.model.config.mask_token_id
    width = max(len(p) for p in prompts)
    previous = None
    for block, x in trace:
        start, end = width + 4 * block, width + 4 * (block + 1)
        if previous is not None:
            changed = (x != previous).any(0).nonzero().flatten()
            assert ((changed >= start) & (changed < end)).all()  # nothing outside the current block changes
            newly = ((previous == mask) & (x != mask)).sum(-1)
            assert newly.tolist() == [2, 2]  # the per-step budget: 4 tokens over 2 steps
            assert not ((previous != mask) & (x != previous)).any()  # committed tokens stay
        previous = x
    per_block = {}
    for block, x in trace:
        per_block[block] = x
    for block, x in per_block.items():  # at a block's last step exactly its block_length tokens are filled
        start = width + 4 * block
        assert (x[:, start:start + 4] != mask).all() and (x[:, start + 4:] == mask).all()
    assert (result.tokens != mask).all() and result.tokens.shape == (2, 12)
    assert result.forward_passes == 6 and result.decoded == 24 and result.tokens_per_forward == 2.0


def test_threshold_commits_every_confident_token_at_once_and_at_least_one():
    table = _table({2: {1: 0.95, 2: 0.05}, 3: {3: 0.92, 4: 0.08}, 4: {4: 0.5, 5: 0.5}, 5: {0: 0.4, 1: 0.6}}, 6)
    settings = SamplerSettings(gen_length=4, steps=4, block_length=2, threshold=0.9, early_stop=False)
    result, trace, _ = _fake_run(table, settings)
    states = [x[0, 2:].tolist() for _, x in trace]
    # block 1: both >= 0.9 at once; block 2: none is, so one per step (most confident first)
    assert states == [[1, 3, MASK, MASK], [1, 3, MASK, 1], [1, 3, 4, 1]]
    assert result.forward_passes == 3 and result.tokens_per_forward == pytest.approx(4 / 3)


def test_random_remasking_orders_by_the_seed_not_the_confidence():
    table = _table({2: {1: 0.99, 2: 0.01}, 3: {3: 0.51, 4: 0.49}}, 4)
    firsts = {"low_confidence": set(), "random": set()}
    for seed in range(12):
        for remasking in firsts:
            settings = SamplerSettings(gen_length=2, steps=2, block_length=2, remasking=remasking, seed=seed,
                                       early_stop=False)
            _, trace, _ = _fake_run(table, settings)
            firsts[remasking].add(int((trace[0][1][0, 2:] != MASK).nonzero()[0]))
    assert firsts["low_confidence"] == {0} and firsts["random"] == {0, 1}


def test_random_topk_draws_positions_in_proportion_to_confidence():
    table = _table({2: {1: 0.9, 2: 0.1}, 3: {3: 0.3, 4: 0.7 / 6, 5: 0.7 / 6, 0: 0.7 / 6, 1: 0.7 / 6, 2: 0.7 / 3}}, 4)
    first_is_confident = 0
    runs = 200
    for seed in range(runs):
        settings = SamplerSettings(gen_length=2, steps=2, block_length=2, remasking="random_topk", seed=seed,
                                   early_stop=False)
        _, trace, _ = _fake_run(table, settings)
        first_is_confident += int(trace[0][1][0, 2] != MASK)
    assert first_is_confident / runs == pytest.approx(0.9 / 1.2, abs=0.08)  # P(first) = 0.9 / (0.9 + 0.3)


def test_the_mask_id_and_unused_rows_are_never_proposed():
    table = _table({2: {MASK: 0.5, 8: 0.3, 2: 0.2}, 3: {8: 0.9, 4: 0.1}}, 4)
    result, _, _ = _fake_run(table, SamplerSettings(gen_length=2, steps=2, block_length=2, early_stop=False))
    assert result.tokens.tolist() == [[2, 4]]


def test_early_stop_fills_after_a_finished_answer_without_computing():
    table = _table({2: {STOP: 0.9, 1: 0.1}, 3: {STOP: 0.8, 2: 0.2}, 4: {1: 0.9, 2: 0.1}, 5: {2: 0.9, 1: 0.1}}, 6)
    settings = SamplerSettings(gen_length=4, steps=4, block_length=2, early_stop=True)
    result, _, _ = _fake_run(table, settings, stop=(STOP,))
    assert result.tokens.tolist() == [[STOP, STOP, STOP, STOP]] and result.forward_passes == 2
    assert result.decoded == 2 and result.tokens_per_forward == 1.0
    computed, _, _ = _fake_run(table, SamplerSettings(gen_length=4, steps=4, block_length=2, early_stop=False),
                               stop=(STOP,))
    assert computed.tokens.tolist() == [[STOP, STOP, 1, 2]] and computed.forward_passes == 4


def test_block_attention_stops_the_forward_at_the_block_end():
    table = _table({p: {1: 0.9, 2: 0.1} for p in range(2, 8)}, 8)
    _, _, free = _fake_run(table, SamplerSettings(gen_length=6, steps=3, block_length=2, early_stop=False))
    _, _, blocked = _fake_run(table, SamplerSettings(gen_length=6, steps=3, block_length=2, block_attention=True,
                                                     early_stop=False))
    assert [c["input_ids"].shape[1] for c in free.calls] == [8, 8, 8]
    assert [c["input_ids"].shape[1] for c in blocked.calls] == [4, 6, 8]
    assert all(c["bias"] is None for c in free.calls)
    bias = blocked.calls[1]["bias"][0, 0]  # block 2 (positions 4-5) sees everything up to itself
    assert (bias[4:6, :6] == 0).all() and (bias[2:4, 4:6] < 0).all()


def test_temperature_zero_is_deterministic_and_temperature_samples_by_seed(llada_bundle):
    ids = [llada_bundle.tokenizer("Who founded Talmark?")["input_ids"]]

    def run(**kw):
        settings = SamplerSettings(gen_length=8, steps=8, block_length=4, early_stop=False, **kw)
        return diffusion_generate(llada_bundle.model, ids, settings, pad_token_id=0).tokens

    assert torch.equal(run(seed=0), run(seed=1))  # T = 0: the seed does not matter
    assert torch.equal(run(temperature=1.0, seed=3), run(temperature=1.0, seed=3))
    assert not torch.equal(run(temperature=1.0, seed=3), run(temperature=1.0, seed=4))
    assert not torch.equal(run(temperature=1.0, seed=3), run())


def _step_logits(model, prompt, settings, x_fill=None):
    """The first step's block logits, through the sampler's own forward."""
    width = len(prompt)
    x = torch.full((1, width + settings.gen_length), model.config.mask_token_id)
    x[0, :width] = torch.tensor(prompt)
    if x_fill is not None:
        x[0, width:width + len(x_fill)] = torch.tensor(x_fill)
    forward = _Forward(model, x, torch.ones_like(x), width, settings, model.config.mask_token_id)
    with torch.no_grad():
        return forward.logits(x, width, width + settings.block_length, first_step=True), x


def test_cfg_zero_equals_the_conditional_logits_and_cfg_follows_the_formula(llada_bundle):
    model = llada_bundle.model
    prompt = llada_bundle.tokenizer("Where is the head office of Brimark?")["input_ids"]
    plain = SamplerSettings(gen_length=8, steps=8, block_length=4)
    logits, x = _step_logits(model, prompt, plain)
    with torch.no_grad():
        conditional = model(input_ids=x).logits[:, len(prompt):len(prompt) + 4].float()
        unconditional_x = x.clone()
        unconditional_x[0, :len(prompt)] = model.config.mask_token_id
        unconditional = model(input_ids=unconditional_x).logits[:, len(prompt):len(prompt) + 4].float()
    torch.testing.assert_close(logits, conditional)
    guided, _ = _step_logits(model, prompt, SamplerSettings(gen_length=8, steps=8, block_length=4, cfg_scale=2.0))
    torch.testing.assert_close(guided, unconditional + 3.0 * (conditional - unconditional), atol=1e-4, rtol=1e-4)
    assert (guided - conditional).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["llada_bundle", "shifted_bundle"])
def test_prefix_cache_is_exact_under_block_attention(name, request):
    bundle = request.getfixturevalue(name)
    tokenizer = bundle.tokenizer
    prompts = [tokenizer("Kirbal Ren was born in Ostmere.")["input_ids"], tokenizer("Who?")["input_ids"]]
    for cfg_scale in (0.0, 1.5):
        plain = SamplerSettings(gen_length=12, steps=12, block_length=4, block_attention=True, cfg_scale=cfg_scale,
                                early_stop=False)
        cached = SamplerSettings(**{**plain.to_dict(), "prefix_cache": True})
        a = diffusion_generate(bundle.model, prompts, plain, pad_token_id=tokenizer.pad_token_id)
        b = diffusion_generate(bundle.model, prompts, cached, pad_token_id=tokenizer.pad_token_id)
        assert torch.equal(a.tokens, b.tokens) and a.forward_passes == b.forward_passes


@pytest.mark.parametrize("name", ["llada_bundle", "shifted_bundle"])
def test_prefix_cache_is_exact_at_the_logits_under_block_attention(name, request):
    """Every cached step's block logits equal the uncached ones for the same sequence (a shifted model's cached
    query starts one position before the block, so its first position still reads the state before it)."""
    bundle = request.getfixturevalue(name)
    model, mask = bundle.model, bundle.model.config.mask_token_id
    prompt = bundle.tokenizer("Brimark sells lamps.")["input_ids"]
    width = len(prompt)
    settings = SamplerSettings(gen_length=8, steps=8, block_length=4, block_attention=True, early_stop=False)
    cached_settings = SamplerSettings(**{**settings.to_dict(), "prefix_cache": True})
    x = torch.full((1, width + 8), mask)
    x[0, :width] = torch.tensor(prompt)
    x[0, width:width + 6] = torch.tensor([11, 12, 13, 14, 15, 16])  # block 1 done, block 2 half filled
    ones = torch.ones_like(x)
    start, end = width + 4, width + 8
    cached = _Forward(model, x, ones, width, cached_settings, mask)
    plain = _Forward(model, x, ones, width, settings, mask)
    with torch.no_grad():
        first = cached.logits(x, start, end, first_step=True)
        later = cached.logits(x, start, end, first_step=False)
        reference = plain.logits(x, start, end, first_step=True)
    torch.testing.assert_close(first, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(later, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name, extra", [("llada_bundle", 0), ("shifted_bundle", 1)])
def test_prefix_cache_runs_later_steps_from_the_block_on(name, extra, request):
    bundle = request.getfixturevalue(name)
    model = bundle.model
    lengths = []
    handle = model.register_forward_pre_hook(lambda m, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]),
                                             with_kwargs=True)
    try:
        prompt = bundle.tokenizer("Ostmere has 4000 residents.")["input_ids"]
        settings = SamplerSettings(gen_length=8, steps=4, block_length=4, prefix_cache=True, early_stop=False)
        result = diffusion_generate(model, [prompt], settings, pad_token_id=0)
    finally:
        handle.remove()
    total = len(prompt) + 8
    # first step of a block: everything; then the block and what follows (a shifted model: one position earlier)
    assert lengths == [total, 8 + extra, total, 4 + extra]
    assert (result.tokens != model.config.mask_token_id).all()


def test_a_shifted_model_decodes_differently(llada_bundle, shifted_bundle):
    """Control: the shift reaches the sampler (the same weights read one position over give other tokens)."""
    prompt = [llada_bundle.tokenizer("Who founded Talmark?")["input_ids"]]
    settings = SamplerSettings(gen_length=8, steps=8, block_length=4, early_stop=False)
    plain = diffusion_generate(llada_bundle.model, prompt, settings, pad_token_id=0)
    shifted = diffusion_generate(shifted_bundle.model, prompt, settings, pad_token_id=0)
    assert not torch.equal(plain.tokens, shifted.tokens)


def test_left_padded_batch_equals_rows_alone(llada_bundle):
    tokenizer = llada_bundle.tokenizer
    prompts = [tokenizer("Tessmark employs 300 people. How many?")["input_ids"], tokenizer("Hello")["input_ids"]]
    settings = SamplerSettings(gen_length=8, steps=8, block_length=4, early_stop=False)
    batched = diffusion_generate(llada_bundle.model, prompts, settings, pad_token_id=tokenizer.pad_token_id)
    for row, prompt in enumerate(prompts):
        alone = diffusion_generate(llada_bundle.model, [prompt], settings, pad_token_id=tokenizer.pad_token_id)
        assert torch.equal(batched.tokens[row], alone.tokens[0])


@pytest.mark.parametrize("bad", [dict(gen_length=10, block_length=4), dict(steps=3, gen_length=8, block_length=4),
                                 dict(remasking="lowest"), dict(threshold=0.0), dict(temperature=-1.0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        SamplerSettings(**bad)
