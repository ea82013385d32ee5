"""Supervised fine-tuning (full weights or LoRA through peft) on answers given context + question.

    python -m parallel_decoding.train method=sft model=smollm2_135m dataset=squad \
        dataset.path=../shared/data/squad/dev-v1.1-half-a.json trainer.max_steps=300
    python -m parallel_decoding.train method=sft_lora ...   # or method.lora.enabled=true method.lora.r=16

Features: loss on answer tokens only (logits computed only where a target is predicted); LoRA on any linear
layers (``method.lora.target_modules``); gradient checkpointing; exports a merged HF directory plus the peft
adapter directory (LoRA) that ``evaluate`` runs with ``strategies=[finetuned] checkpoints.finetuned=<dir>``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
import transformers.modeling_utils
from torch import nn

from parallel_decoding.methods.base import FinetuningMethod, enabled_lora
from parallel_decoding.methods.finetuning import IGNORE_INDEX
from parallel_decoding.methods.sft.collator import SFTCollator
from parallel_decoding.models.bundle import ModelBundle

# transformers >= 5 models take a boolean (batch, seq) mask as ``logits_to_keep`` and project only those positions
_MASKED_LOGITS = hasattr(transformers.modeling_utils, "slice_logits_to_keep")


def answer_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over target tokens, and their count.

    Position ``t`` predicts token ``t + 1``: the targets are the labels shifted left by one, so only positions
    followed by an answer token are scored (the last prompt token predicts the first answer token; padding and
    prompt positions never count). Only those positions go through the LM head: with a large vocabulary and a
    long passage the head over every position would cost more than the answer itself.
    """
    labels = batch["labels"]
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[:, :-1] = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    n_targets = int(keep.sum())
    if n_targets == 0:
        raise ValueError("the batch has no target tokens")
    kwargs: dict[str, Any] = {"logits_to_keep": keep} if _MASKED_LOGITS else {}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                   **kwargs).logits
    if logits.dim() == 3:  # full logits (no masked-logits support): pick the scored positions here
        logits = logits[keep]
    return F.cross_entropy(logits.float(), targets[keep]), n_targets


class SFTMethod(FinetuningMethod):
    def __init__(
        self,
        bundle: ModelBundle,
        name: str = "sft",
        optimizer: Any = None,
        scheduler: Any = None,
        generation: dict[str, Any] | None = None,
        eval_strategy: str = "batch",
        max_length: int = 1024,
        lora: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        self.lora_settings = enabled_lora(lora)
        self.gradient_checkpointing = gradient_checkpointing
        self.max_length = max_length
        super().__init__(bundle, name=name, optimizer=optimizer, scheduler=scheduler, generation=generation,
                         eval_strategy=eval_strategy,
                         config={"max_length": max_length, "lora": self.lora_settings,
                                 "gradient_checkpointing": gradient_checkpointing})
        self._collator: SFTCollator | None = None

    def collator(self) -> SFTCollator:
        if self._collator is None:
            self._collator = SFTCollator(self.tokenizer, self.enable_thinking, self.max_length)
        return self._collator

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        return answer_loss(self.model, batch)
