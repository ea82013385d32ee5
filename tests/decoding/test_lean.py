"""The lean forward (``decoding/lean.py``) stands in for the HF forward: the same logits on the engine's own calls,
greedy answers equal to each branch decoded alone by HF ``generate`` (with every ``LeanOptions`` lever), and the
HF forward whenever the lean one would skip something (hooks, patched RoPE, eager attention, lean=False)."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from parallel_decoding.decoding import SharedPrefixDecoder
from parallel_decoding.decoding.layout import make_layout
from parallel_decoding.decoding.lean import LeanForward, LeanOptions, lean_unsupported
from tests.decoding.conftest import SMALL_VOCAB
from tests.decoding.reference import hf_greedy
from tests.decoding.test_engine_exact import QWEN_TEXT_IDS

LEVERS = [LeanOptions(fuse_qkv=True), LeanOptions(fuse_gate_up=True), LeanOptions(fused_rms_norm=True),
          LeanOptions(fuse_qkv=True, fuse_gate_up=True, fused_rms_norm=True)]


def _models(small_models, qwen3_models):
    return {"llama": small_models["llama", "sdpa"], "qwen2": small_models["qwen2", "sdpa"],
            "qwen3": qwen3_models["sdpa"][0]}


def test_lean_covers_the_sdpa_test_models(small_models, qwen3_models):
    """So the exactness tests of test_engine_exact.py run the lean forward for sdpa and the HF one for eager."""
    for name, model in _models(small_models, qwen3_models).items():
        assert lean_unsupported(model) is None, name
        assert SharedPrefixDecoder(model).lean_forward() is not None
        assert SharedPrefixDecoder(model, lean=False).lean_forward() is None
    assert lean_unsupported(small_models["llama", "eager"]) == "attention is not sdpa"
    assert lean_unsupported(qwen3_models["eager"][0]) == "attention is not sdpa"


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "all_fusions"])
@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
@pytest.mark.parametrize("kind", ["batch_shared", "in_sequence"])
def test_lean_logits_equal_hf_forward(small_models, qwen3_models, family, kind, fused):
    """Prefill, branch prompts (unequal lengths: padded rows) and decode steps: lean logits = HF logits."""
    model = _models(small_models, qwen3_models)[family]
    vocab = QWEN_TEXT_IDS if family == "qwen3" else SMALL_VOCAB
    rng = random.Random(23)
    prefix = [rng.randrange(vocab) for _ in range(11)]
    branches = [[rng.randrange(vocab) for _ in range(n)] for n in (3, 1, 5)]
    lean = SharedPrefixDecoder(model, lean=LEVERS[-1] if fused else True)
    hf = SharedPrefixDecoder(model, lean=False)
    state = hf.prefill(prefix)
    lean_cache = state.cache.fork(3 if kind == "batch_shared" else 1, extra_capacity=40)
    hf_cache = state.cache.fork(3 if kind == "batch_shared" else 1, extra_capacity=40)
    layout = make_layout(kind, 3)
    layout.start(len(prefix))
    fwd = layout.place({b: branches[b] for b in range(3)})
    forward = lean.lean_forward()
    for step in range(4):
        with torch.inference_mode():
            want = model(input_ids=fwd.input_ids, attention_mask=fwd.attention_mask, position_ids=fwd.position_ids,
                         cache=hf_cache, use_cache=True, logits_to_keep=fwd.logits_to_keep).logits
            got = forward(fwd.input_ids, fwd.attention_mask, fwd.position_ids, lean_cache, fwd.logits_to_keep)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        tokens = {b: [int(want[fwd.branch_logit[b]].argmax())] for b in range(3)}
        fwd = layout.place(tokens)


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
@pytest.mark.parametrize("options", LEVERS, ids=lambda o: "+".join(k for k, v in vars(o).items() if v))
def test_every_lever_matches_hf_generate(small_models, qwen3_models, options, family):
    """Each optional lever keeps greedy answers equal to HF ``generate`` of each branch alone (both layouts)."""
    model = _models(small_models, qwen3_models)[family]
    vocab = QWEN_TEXT_IDS if family == "qwen3" else SMALL_VOCAB
    stop_ids = qwen3_models["sdpa"][2] if family == "qwen3" else [SMALL_VOCAB - 1]
    decoder = SharedPrefixDecoder(model, lean=options)
    rng = random.Random(31)
    for case in range(3):
        prefix = [rng.randrange(vocab) for _ in range(rng.randint(2, 20))]
        branches = [[rng.randrange(vocab) for _ in range(rng.randint(1, 6))] for _ in range(rng.choice([1, 4]))]
        expected = [hf_greedy(model, prefix + b, 8, stop_ids) for b in branches]
        for layout in ("batch_shared", "in_sequence"):
            got = decoder.generate(prefix, branches, layout, max_new_tokens=8, stop_token_ids=stop_ids)
            assert got.sequences == expected, f"{options} case {case} {layout}"
    assert decoder.lean_forward().options == options


def test_hf_forward_where_lean_would_skip_something(qwen3_models):
    """A hook on a submodule, a forward hook on the model, or a replaced rotary embedding: the HF forward runs
    (the hook sees every call); a plain pre-hook on the model itself is honoured by the lean forward."""
    model, _, stop_ids = qwen3_models["sdpa"]
    decoder = SharedPrefixDecoder(model)
    args = ([5, 6, 7, 8], [[9, 10], [11]], "in_sequence")
    expected = decoder.generate(*args, max_new_tokens=4, stop_token_ids=[]).sequences

    seen = []
    handle = model.model.layers[0].mlp.register_forward_hook(lambda *a: seen.append(1))
    try:
        assert "submodule" in lean_unsupported(model) and decoder.lean_forward() is None
        out = decoder.generate(*args, max_new_tokens=4, stop_token_ids=[])
    finally:
        handle.remove()
    assert out.sequences == expected and len(seen) == out.stats.forward_passes

    handle = model.register_forward_hook(lambda *a: seen.append(1))
    try:
        assert decoder.lean_forward() is None
    finally:
        handle.remove()

    counted = []
    handle = model.register_forward_pre_hook(lambda module, a: counted.append(a))
    try:
        assert decoder.lean_forward() is not None
        out = decoder.generate(*args, max_new_tokens=4, stop_token_ids=[])
    finally:
        handle.remove()
    assert out.sequences == expected and len(counted) == out.stats.forward_passes and counted[0] == ()

    class OtherRope(nn.Module):
        pass

    original = model.model.rotary_emb
    model.model.rotary_emb = OtherRope()
    try:
        assert "rotary" in lean_unsupported(model) and decoder.lean_forward() is None
    finally:
        model.model.rotary_emb = original
    assert decoder.lean_forward() is not None


def test_lean_forward_refuses_uncovered_models(small_models):
    with pytest.raises(ValueError, match="attention is not sdpa"):
        LeanForward(small_models["llama", "eager"])
