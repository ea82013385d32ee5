"""Greedy decoding through both layouts is token-identical to decoding each branch alone with HF ``generate``.

Random prompt sets on tiny models (fp32, CPU): 1-8 branches of unequal length, random prefix length, stop ids
chosen from the reference's own outputs so branches end early and at different steps."""

from __future__ import annotations

import random

import pytest
import torch

from parallel_decoding.decoding import InSequenceLayout, SharedPrefixDecoder, additive_mask
from parallel_decoding.decoding.layout import TRUNK
from tests.decoding.conftest import SMALL_VOCAB
from tests.decoding.reference import hf_greedy

LAYOUTS = ("batch_shared", "in_sequence")
QWEN_TEXT_IDS = 151643  # ids below this are ordinary (non-special) Qwen tokens


def random_case(rng: random.Random, vocab: int, max_branches: int = 8):
    prefix = [rng.randrange(vocab) for _ in range(rng.randint(1, 24))]
    n = rng.choice([1, 2, 3, 5, max_branches])
    branches = [[rng.randrange(vocab) for _ in range(rng.randint(1, 10))] for _ in range(n)]
    return prefix, branches, rng.randint(2, 14)


def early_stop_ids(rng: random.Random, free_runs: list[list[int]], base: list[int]) -> list[int]:
    """Stop ids that end some branches early: a token one branch produced at a random step of its free run."""
    run = rng.choice(free_runs)
    return sorted(set(base) | {run[rng.randrange(len(run))]})


def check_cases(model, vocab: int, base_stop: list[int], seed: int, cases: int) -> int:
    rng = random.Random(seed)
    decoder = SharedPrefixDecoder(model, pad_token_id=0)
    early = 0
    for case in range(cases):
        prefix, branches, max_new = random_case(rng, vocab)
        stop = base_stop
        if case % 3 != 0:  # where the stop id comes from does not matter; the reference decodes with it
            free = decoder.generate(prefix, branches, "batch_shared", max_new_tokens=max_new, stop_token_ids=base_stop)
            stop = early_stop_ids(rng, free.sequences, base_stop)
        expected = [hf_greedy(model, prefix + b, max_new, stop) for b in branches]
        early += sum(len(e) < max_new for e in expected)
        for layout in LAYOUTS:
            got = decoder.generate(prefix, branches, layout, max_new_tokens=max_new, stop_token_ids=stop)
            assert got.sequences == expected, f"case {case} layout {layout}: prefix {prefix} branches {branches}"
    return early


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_tiny_qwen3_matches_hf_generate(qwen3_models, attn):
    model, _, stop_ids = qwen3_models[attn]
    early = check_cases(model, QWEN_TEXT_IDS, stop_ids, seed={"sdpa": 101, "eager": 202}[attn], cases=10)
    assert early > 0  # the early-stop path was exercised


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_llama_and_qwen2_match_hf_generate(small_models, family, attn):
    check_cases(small_models[family, attn], SMALL_VOCAB, [SMALL_VOCAB - 1], seed=7, cases=6)


def test_results_do_not_depend_on_who_shares_the_step(qwen3_models):
    """A branch decodes the same alone, with every other branch, or with a subset, in either layout."""
    model, _, stop_ids = qwen3_models["sdpa"]
    rng = random.Random(3)
    decoder = SharedPrefixDecoder(model)
    prefix, _, _ = random_case(rng, QWEN_TEXT_IDS)
    branches = [[rng.randrange(QWEN_TEXT_IDS) for _ in range(rng.randint(1, 9))] for _ in range(6)]
    together = decoder.generate(prefix, branches, "in_sequence", max_new_tokens=12, stop_token_ids=stop_ids).sequences
    for layout in LAYOUTS:
        alone = [decoder.generate(prefix, [b], layout, max_new_tokens=12, stop_token_ids=stop_ids).sequences[0]
                 for b in branches]
        subset = decoder.generate(prefix, branches[1::2], layout, max_new_tokens=12, stop_token_ids=stop_ids)
        assert alone == together
        assert subset.sequences == together[1::2]


def test_prefix_state_is_reusable_and_extendable(qwen3_models):
    """A cached prefix gives the same continuations as raw ids, survives several decodes, and extends."""
    model, _, stop_ids = qwen3_models["sdpa"]
    rng = random.Random(5)
    decoder = SharedPrefixDecoder(model)
    head = [rng.randrange(QWEN_TEXT_IDS) for _ in range(9)]
    tail = [rng.randrange(QWEN_TEXT_IDS) for _ in range(4)]
    branches = [[rng.randrange(QWEN_TEXT_IDS) for _ in range(3)] for _ in range(3)]
    state = decoder.prefill(head)
    first = decoder.generate(state, branches, "in_sequence", max_new_tokens=8, stop_token_ids=stop_ids)
    second = decoder.generate(state, branches, "batch_shared", max_new_tokens=8, stop_token_ids=stop_ids)
    raw = decoder.generate(head, branches, "batch_shared", max_new_tokens=8, stop_token_ids=stop_ids)
    assert first.sequences == second.sequences == raw.sequences
    assert first.stats.forward_passes == raw.stats.forward_passes - 1  # the prefix was not recomputed
    extended = decoder.prefill(tail, base=state)
    assert list(extended.ids) == head + tail
    got = decoder.generate(extended, branches, "in_sequence", max_new_tokens=8, stop_token_ids=stop_ids)
    assert got.sequences == [hf_greedy(model, head + tail + b, 8, stop_ids) for b in branches]


def test_stop_strings_match_hf_generate(qwen3_models):
    """A branch ends when the text it generated contains a stop string, that token included (HF semantics)."""
    model, tokenizer, stop_ids = qwen3_models["sdpa"]
    rng = random.Random(11)
    decoder = SharedPrefixDecoder(model, tokenizer=tokenizer)
    stop_string, reasons = None, []
    for _ in range(3):
        prefix = [rng.randrange(QWEN_TEXT_IDS) for _ in range(6)]
        branches = [[rng.randrange(QWEN_TEXT_IDS) for _ in range(rng.randint(1, 5))] for _ in range(3)]
        if stop_string is None:  # half of a word the first branch writes; HF caches its tables per stop string
            free = decoder.generate(prefix, branches[:1], max_new_tokens=10, stop_token_ids=stop_ids).sequences[0]
            word = tokenizer.decode(free[3:4]).strip() or tokenizer.decode(free[3:4])
            stop_string = word[: max(1, len(word) // 2)]
        expected = [hf_greedy(model, prefix + b, 10, stop_ids, [stop_string], tokenizer) for b in branches]
        for layout in LAYOUTS:
            got = decoder.generate(prefix, branches, layout, max_new_tokens=10, stop_token_ids=stop_ids,
                                   stop_strings=[stop_string])
            assert got.sequences == expected
            reasons += [b.finish_reason for b in got.branches]
    assert "stop_string" in reasons


def test_stats_count_the_work(qwen3_models):
    model, _, _ = qwen3_models["sdpa"]
    calls = []
    hook = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        decoder = SharedPrefixDecoder(model)
        out = decoder.generate([1, 2, 3, 4], [[5, 6], [7], [8, 9, 10]], "in_sequence", max_new_tokens=5,
                               stop_token_ids=[])
    finally:
        hook.remove()
    stats = out.stats
    assert [len(s) for s in out.sequences] == [5, 5, 5] and stats.generated_tokens == 15
    assert stats.forward_passes == len(calls) == 1 + 1 + 4  # prefix, branch prompts, 4 decode steps
    assert stats.prefill_tokens == 4 + 6 and stats.decode_tokens == 12 and stats.steps == 4
    assert stats.wall_time_s >= stats.decode_time_s > 0 and stats.tokens_per_s > 0


class LeakyLayout(InSequenceLayout):
    """A deliberately wrong layout: branches see each other's earlier tokens."""

    def visible(self, query, keys, query_slot):
        slot = torch.arange(keys.length)
        return slot[None, None, :] <= query_slot[:, :, None]


def test_leaky_mask_is_detected(qwen3_models):
    """The exactness tests have teeth: a mask that lets branches see each other changes the outputs."""
    model, _, stop_ids = qwen3_models["sdpa"]
    rng = random.Random(13)
    decoder = SharedPrefixDecoder(model)
    prefix = [rng.randrange(QWEN_TEXT_IDS) for _ in range(8)]
    branches = [[rng.randrange(QWEN_TEXT_IDS) for _ in range(4)] for _ in range(4)]
    expected = [hf_greedy(model, prefix + b, 8, stop_ids) for b in branches]
    leaky = decoder.generate(prefix, branches, LeakyLayout(len(branches)), max_new_tokens=8, stop_token_ids=stop_ids)
    assert leaky.sequences != expected
    assert TRUNK < 0  # the prefix marker can never collide with a branch index


def test_low_precision_padded_rows_stay_finite(qwen3_models):
    """bf16 + eager + unequal branch lengths (padded rows, blocked slots): no NaN/inf in any logits."""
    model, _, _ = qwen3_models["eager"]
    low = type(model)(model.config).to(torch.bfloat16).eval()
    low.load_state_dict(model.state_dict())
    seen = []
    hook = low.register_forward_hook(lambda module, args, out: seen.append(bool(torch.isfinite(out.logits).all())))
    try:
        for layout in LAYOUTS:
            SharedPrefixDecoder(low).generate([3, 4, 5], [[6], [7, 8, 9, 10, 11], [12, 13]], layout, max_new_tokens=4,
                                              stop_token_ids=[])
    finally:
        hook.remove()
    assert seen and all(seen)


def test_incremental_decoding_equals_one_full_forward(qwen3_models):
    """The cached step-by-step decode equals one uncached forward over the final in-sequence
    layout (the same positions, the full mask of ``full_visibility``): each slot's argmax is the token its
    branch produced next."""
    model, _, _ = qwen3_models["eager"]
    rng = random.Random(19)
    prefix = [rng.randrange(QWEN_TEXT_IDS) for _ in range(7)]
    branches = [[rng.randrange(QWEN_TEXT_IDS) for _ in range(k)] for k in (2, 5, 1)]
    out = SharedPrefixDecoder(model).generate(prefix, branches, "in_sequence", max_new_tokens=6, stop_token_ids=[])
    layout = InSequenceLayout(3)
    layout.start(len(prefix))
    layout.place({b: branches[b] for b in range(3)})
    for step in range(5):  # the engine feeds back every generated token but the last
        layout.place({b: [out.sequences[b][step]] for b in range(3)})
    order = {b: [i for i, x in enumerate(layout.slots.branch[0].tolist()) if x == b] for b in range(3)}
    ids = torch.zeros(layout.slots.length, dtype=torch.long)
    ids[:len(prefix)] = torch.tensor(prefix)
    for b in range(3):
        ids[order[b]] = torch.tensor(branches[b] + out.sequences[b][:5])
    with torch.no_grad():
        logits = model(input_ids=ids[None], position_ids=layout.slots.position, use_cache=False,
                       attention_mask=additive_mask(layout.full_visibility(), torch.float32)).logits[0]
    for b in range(3):
        predicting = order[b][len(branches[b]) - 1:]  # the last prompt slot, then every fed-back token
        assert logits[predicting].argmax(-1).tolist() == out.sequences[b]
