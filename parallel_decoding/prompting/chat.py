"""Chat-template encoding, written once: every backend, trainer and tool must send a model the same ids."""

from __future__ import annotations

from typing import Any, Sequence


def chat_prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]], enable_thinking: bool = False) -> list[int]:
    """Token ids of ``messages`` in the model's chat template, ending in an open assistant turn.

    ``enable_thinking`` is passed to the template (Qwen3 reads it; others ignore it). transformers 5 returns a
    ``BatchEncoding`` where 4.x returned a list: both are accepted.
    """
    encoded = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True,
                                            enable_thinking=enable_thinking)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)
