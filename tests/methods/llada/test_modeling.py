"""The diffusion model: conversion keeps weights, the mask id is not text, attention is non-causal, the bias
reaches attention under eager and SDPA, padding is invisible, save/load round-trips;
``shift_logits`` reads position i from hidden state i - 1 in every form, survives saving, and refuses a cached
query that would need a state it does not have."""

from __future__ import annotations

import json

import pytest
import torch

from parallel_decoding.config import ConfigError
from parallel_decoding.methods.llada.compare import compare_checkpoints, main as compare_main
from parallel_decoding.methods.llada.modeling import (Qwen3DiffusionLM, additive_attention_mask,
                                                      convert_causal_to_diffusion, is_diffusion_model,
                                                      load_diffusion_model)
from parallel_decoding.models.tiny import QWEN3_VOCAB_SIZE

QWEN3_REAL_TOKENS = 151669


def _ids(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 5000, (2, n), generator=torch.Generator().manual_seed(seed))


def test_conversion_copies_every_weight_unchanged(fresh_causal):
    bundle = fresh_causal
    before = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    model = convert_causal_to_diffusion(bundle.model, bundle.tokenizer)
    after = model.state_dict()
    assert isinstance(model, Qwen3DiffusionLM) and is_diffusion_model(model)
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert model.get_input_embeddings().num_embeddings == QWEN3_VOCAB_SIZE  # a spare row existed: no growth
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied


def test_qwen3_mask_id_is_an_unused_row_that_never_decodes_to_text(llada_bundle):
    model, tokenizer = llada_bundle.model, llada_bundle.tokenizer
    mask = model.config.mask_token_id
    assert len(tokenizer) == QWEN3_REAL_TOKENS
    assert QWEN3_REAL_TOKENS <= mask < model.config.vocab_size == QWEN3_VOCAB_SIZE
    assert mask not in set(tokenizer.get_vocab().values())
    assert tokenizer.decode([mask]) == "" and tokenizer.decode([mask], skip_special_tokens=False) == ""
    text = "<|mask|> [MASK] <mask> <|im_end|> <think> any text at all 126336"
    assert mask not in tokenizer(text)["input_ids"]


def test_vocabulary_without_a_spare_row_grows_and_keeps_old_rows(fresh_causal):
    bundle = fresh_causal
    bundle.model.resize_token_embeddings(QWEN3_REAL_TOKENS)  # like SmolLM2: every row is a real token
    old = bundle.model.get_input_embeddings().weight.detach().clone()
    model = convert_causal_to_diffusion(bundle.model, bundle.tokenizer)
    rows = model.get_input_embeddings().num_embeddings
    assert model.config.mask_token_id == QWEN3_REAL_TOKENS and rows > QWEN3_REAL_TOKENS and rows % 64 == 0
    assert torch.equal(model.get_input_embeddings().weight[:QWEN3_REAL_TOKENS], old)
    assert model.config.vocab_size == rows


def test_a_mask_id_that_is_a_real_token_is_refused(fresh_causal):
    bundle = fresh_causal
    with pytest.raises(ConfigError, match="real token"):
        convert_causal_to_diffusion(bundle.model, bundle.tokenizer, mask_token_id=100)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_attention_is_bidirectional(llada_bundle, implementation):
    model = llada_bundle.model
    model.config._attn_implementation = implementation
    try:
        x = _ids(10)
        changed = x.clone()
        changed[:, -1] += 1
        with torch.no_grad():
            first = model(input_ids=x).logits[:, 0]
            first_changed = model(input_ids=changed).logits[:, 0]
        assert (first - first_changed).abs().max() > 1e-4  # a later token changes the first position's logits
    finally:
        model.config._attn_implementation = "sdpa"


def test_the_causal_source_is_causal_control(tiny_causal):
    bundle = tiny_causal
    x = _ids(10)
    changed = x.clone()
    changed[:, -1] += 1
    with torch.no_grad():
        assert torch.equal(bundle.model(input_ids=x).logits[:, 0], bundle.model(input_ids=changed).logits[:, 0])


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_attention_bias_reaches_attention(llada_bundle, implementation):
    model = llada_bundle.model
    model.config._attn_implementation = implementation
    try:
        x = _ids(8, seed=1)
        bias = torch.zeros(1, 1, 8, 8)
        bias[..., 4:] = torch.finfo(torch.float32).min  # nobody sees the last four keys
        changed = x.clone()
        changed[:, 4:] += 7
        with torch.no_grad():
            free = model(input_ids=x).logits
            biased = model(input_ids=x, attention_bias=bias).logits
            biased_changed = model(input_ids=changed, attention_bias=bias).logits
        assert (free - biased).abs().max() > 1e-3
        torch.testing.assert_close(biased[:, :4], biased_changed[:, :4])  # the blocked keys have no influence
    finally:
        model.config._attn_implementation = "sdpa"


def test_eager_and_sdpa_agree_with_bias_and_padding(llada_bundle):
    model = llada_bundle.model
    x = _ids(6, seed=2)
    bias = torch.zeros(2, 1, 6, 6)
    bias[0, :, :, 5] = -1e9
    pad = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    out = {}
    for implementation in ("eager", "sdpa"):
        model.config._attn_implementation = implementation
        with torch.no_grad():
            out[implementation] = model(input_ids=x, attention_bias=bias, attention_mask=pad).logits
    model.config._attn_implementation = "sdpa"
    torch.testing.assert_close(out["eager"], out["sdpa"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["llada_bundle", "shifted_bundle"])
def test_left_padding_is_invisible(name, request):
    """A left-padded row gives the logits of the same row unpadded: padded keys are blocked and positions
    restart at the first real token (what batched sampling relies on). Shifted: the first real token after the
    padding has no previous real state and keeps its own, like position 0."""
    model = request.getfixturevalue(name).model
    x = _ids(5, seed=3)[:1]
    padded = torch.cat([torch.full((1, 3), 17), x], dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        alone = model(input_ids=x).logits
        in_batch = model(input_ids=padded, attention_mask=mask).logits[:, 3:]
        hidden = _backbone_hidden(model, padded, mask)
    torch.testing.assert_close(alone, in_batch, atol=1e-4, rtol=1e-4)
    read_from = [3, 3, 4, 5, 6] if model.config.shift_logits else [3, 4, 5, 6, 7]
    torch.testing.assert_close(in_batch, model.lm_head(hidden[:, read_from]), atol=1e-5, rtol=1e-5)


def test_additive_mask_never_overflows_to_minus_infinity():
    bias = torch.full((1, 1, 2, 2), torch.finfo(torch.float32).min)
    mask = additive_attention_mask(1, 2, 2, torch.bfloat16, torch.device("cpu"), bias, torch.tensor([[0, 1]]))
    assert mask.dtype == torch.bfloat16 and torch.isfinite(mask).all()


def test_logits_positions_select_rows(llada_bundle):
    x = _ids(6, seed=4)
    keep = torch.zeros(2, 6, dtype=torch.bool)
    keep[0, 1] = keep[1, 4] = True
    with torch.no_grad():
        full = llada_bundle.model(input_ids=x).logits
        picked = llada_bundle.model(input_ids=x, logits_positions=keep).logits
        sliced = llada_bundle.model(input_ids=x, logits_positions=slice(2, 4)).logits
    torch.testing.assert_close(picked, full[keep])
    torch.testing.assert_close(sliced, full[:, 2:4])


@pytest.mark.parametrize("name", ["llada_bundle", "shifted_bundle"])
def test_save_and_load_round_trip(name, request, tmp_path):
    model = request.getfixturevalue(name).model
    model.save_pretrained(tmp_path, safe_serialization=True)
    assert json.loads((tmp_path / "config.json").read_text())["shift_logits"] is (name == "shifted_bundle")
    loaded = load_diffusion_model(str(tmp_path))
    x = _ids(7, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=x).logits, loaded(input_ids=x).logits)
    assert type(loaded) is Qwen3DiffusionLM and loaded.config.mask_token_id == model.config.mask_token_id
    assert loaded.config.real_vocab_size == QWEN3_REAL_TOKENS
    assert loaded.config.shift_logits is (name == "shifted_bundle")
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()


def test_a_config_saved_before_the_shift_existed_loads_unshifted(llada_bundle, tmp_path):
    llada_bundle.model.save_pretrained(tmp_path, safe_serialization=True)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["shift_logits"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_diffusion_model(str(tmp_path))
    x = _ids(5, seed=6)
    assert loaded.config.shift_logits is False
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=x).logits, llada_bundle.model(input_ids=x).logits)


def _backbone_hidden(model, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Last hidden states straight from the backbone (not the diffusion forward): every real key visible."""
    batch, length = x.shape
    mask = torch.zeros(batch, 1, length, length)
    positions = torch.arange(length).expand(batch, length)
    if attention_mask is not None:
        mask = mask.masked_fill(~attention_mask.bool()[:, None, None, :], torch.finfo(torch.float32).min)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return model.model(input_ids=x, attention_mask=mask, position_ids=positions).last_hidden_state


def test_shifted_logits_are_the_head_of_the_previous_hidden_state(shifted_bundle, llada_bundle):
    model = shifted_bundle.model
    x = _ids(7, seed=8)
    keep = torch.zeros(2, 7, dtype=torch.bool)
    keep[0, [0, 3]] = keep[1, [1, 6]] = True
    with torch.no_grad():
        hidden = _backbone_hidden(model, x)
        expected = model.lm_head(hidden[:, [0, 0, 1, 2, 3, 4, 5]])  # position 0 has no previous state: its own
        full = model(input_ids=x).logits
        picked = model(input_ids=x, logits_positions=keep).logits
        sliced = model(input_ids=x, logits_positions=slice(2, 5)).logits
        head = model(input_ids=x, logits_positions=slice(0, 2)).logits
        unshifted = llada_bundle.model(input_ids=x).logits  # the same weights without the flag
    torch.testing.assert_close(full, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(picked, expected[keep], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sliced, expected[:, 2:5], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(head, expected[:, 0:2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(unshifted, model.lm_head(hidden), atol=1e-5, rtol=1e-5)
    assert (full[:, 1:] - unshifted[:, 1:]).abs().max() > 1e-3


def test_a_cached_shifted_query_needing_a_cached_state_is_refused(shifted_bundle):
    """The cache holds keys and values, not hidden states: the first query position's logits would need the
    last cached position's state, so selecting it raises; starting the query one earlier gives exact logits."""
    model = shifted_bundle.model
    x = _ids(8, seed=7)

    def cached_call(prefix: int, selection):
        cache = model(input_ids=x[:, :prefix], use_cache=True).cache  # the prefix computed on its own
        return model(input_ids=x[:, prefix:], cache=cache, position_ids=torch.arange(prefix, 8).expand(2, -1),
                     logits_positions=selection).logits

    first_only = torch.tensor([[True, False, False], [False, False, True]])
    with torch.no_grad():
        for selection in (None, slice(0, 2), slice(None), first_only):
            with pytest.raises(ValueError, match="shift_logits"):
                cached_call(5, selection)
        bias = torch.zeros(1, 1, 8, 8)
        bias[..., :4, 4:] = torch.finfo(torch.float32).min  # the full forward equivalent: the prefix sees itself
        full = model(input_ids=x, attention_bias=bias).logits
        later = torch.tensor([[False, True, True, False], [False, False, False, True]])
        torch.testing.assert_close(cached_call(4, slice(1, 4)), full[:, 5:8], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cached_call(4, later), full[:, 4:][later], atol=1e-5, rtol=1e-5)


def test_conversion_with_the_shift_sets_only_the_flag(fresh_causal, llada_bundle):
    bundle = fresh_causal
    model = convert_causal_to_diffusion(bundle.model, bundle.tokenizer, shift_logits=True)
    assert model.config.shift_logits is True and llada_bundle.model.config.shift_logits is False
    reference = llada_bundle.model.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    assert convert_causal_to_diffusion(model, bundle.tokenizer) is model  # already diffusion: its config decides
    with pytest.raises(ConfigError, match="without the shift"):
        convert_causal_to_diffusion(llada_bundle.model, bundle.tokenizer, shift_logits=True)


def test_loading_a_causal_dir_as_diffusion_is_refused(tiny_causal, tmp_path):
    tiny_causal.model.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="not a diffusion model"):
        load_diffusion_model(str(tmp_path))


def test_unsupported_attention_and_generate_are_refused(llada_bundle, fresh_causal):
    with pytest.raises(TypeError, match="diffusion_generate"):
        llada_bundle.model.generate(torch.zeros(1, 2, dtype=torch.long))
    bundle = fresh_causal
    bundle.model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ConfigError, match="float mask"):
        convert_causal_to_diffusion(bundle.model, bundle.tokenizer)


def test_compare_command_checks_names_shapes_and_values(fresh_causal, tmp_path, capsys):
    bundle = fresh_causal
    bundle.model.save_pretrained(tmp_path / "causal")
    model = convert_causal_to_diffusion(bundle.model, bundle.tokenizer)
    model.save_pretrained(tmp_path / "diffusion")
    result = compare_checkpoints(tmp_path / "causal", tmp_path / "diffusion", values=True)
    assert result.same_layout and result.same_values and result.common > 10
    assert compare_main([str(tmp_path / "causal"), str(tmp_path / "diffusion"), "--values"]) == 0
    assert "IDENTICAL" in capsys.readouterr().out

    with torch.no_grad():
        model.model.norm.weight.add_(1.0)
    model.save_pretrained(tmp_path / "changed")
    changed = compare_checkpoints(tmp_path / "diffusion", tmp_path / "changed", values=True)
    assert changed.same_layout and not changed.same_values
    assert changed.max_abs_diff["model.norm.weight"] == pytest.approx(1.0)
    assert compare_main([str(tmp_path / "diffusion"), str(tmp_path / "changed"), "--values"]) == 1
