"""A loaded model's dtype names the precision a checkpoint loaded beside it gets."""

from __future__ import annotations

import torch

from parallel_decoding.models.bundle import dtype_name, resolve_dtype


def test_dtype_name_reads_back_through_resolve_dtype_and_defaults_to_float32():
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        assert resolve_dtype(dtype_name(dtype)) is dtype
    assert dtype_name(torch.float64) == "float32"


def test_load_options_repeat_the_loaded_models_precision_device_and_attention():
    from parallel_decoding.models.tiny import build_tiny_qwen3

    bundle = build_tiny_qwen3(dtype="float32", device="cpu")
    assert bundle.load_options() == {"dtype": "float32", "device": "cpu",
                                     "attn_implementation": bundle.model.config._attn_implementation}
