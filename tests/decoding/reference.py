"""The independent reference: each branch decoded alone by Hugging Face ``generate`` (batch 1, no padding)."""

from __future__ import annotations

from typing import Sequence

import torch


@torch.inference_mode()
def hf_greedy(model, prompt: Sequence[int], max_new_tokens: int, stop_ids: Sequence[int],
              stop_strings: Sequence[str] = (), tokenizer=None) -> list[int]:
    extra = dict(stop_strings=list(stop_strings), tokenizer=tokenizer) if stop_strings else {}
    out = model.generate(torch.tensor([list(prompt)]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                         eos_token_id=list(stop_ids), pad_token_id=0, **extra)
    return out[0, len(prompt):].tolist()
